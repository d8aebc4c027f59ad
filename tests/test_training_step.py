"""The training step: G then D, no gradient leak from G's loss into D, frozen flow network untouched; its fast paths
(channels-last, bf16 autocast, fp16 with GradScalers, torch.compile). Tests taking `device` run on the CPU and, where
present, on CUDA (tests/conftest.py)."""

import copy

import pytest
import torch
from helpers import relative_update_error

from config import build_config
from config_flags import config_from_namespace
from errors import FFPError
from flownet import FlowNet2SD, FlowNet2SDFlow
from model import Discriminator, Generator, init_weights
from train import parse_args
from training import losses
from training.nets import choose_memory_format, with_resolved_speed
from training.step import Nets, Precision, make_precision, split_clip, train_step, use_channels_last


def make_nets(cfg, flow=None, seed=0, device="cpu"):
    torch.manual_seed(seed)
    g, d = Generator(cfg.in_frames, cfg.g_widths), Discriminator(cfg.d_widths)
    init_weights(g)
    init_weights(d)
    g, d = g.to(device), d.to(device)
    return Nets(
        g,
        d,
        torch.optim.Adam(g.parameters(), cfg.lr_g, betas=cfg.adam_betas),
        torch.optim.Adam(d.parameters(), cfg.lr_d, betas=cfg.adam_betas),
        flow,
    )


def tiny_cfg(**over):
    return build_config("synthetic", "tiny", {"flownet": "none", "height": 64, "width": 64, **over})


def random_clip(cfg, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (2, cfg.in_frames + 1, 3, cfg.height, cfg.width), generator=g, dtype=torch.uint8)


def test_discriminator_update_sees_only_its_own_loss(device):
    cfg = tiny_cfg()
    nets = make_nets(cfg, device=device)
    reference = copy.deepcopy(nets)
    clip = random_clip(cfg)
    train_step(nets, cfg, clip, device)

    # Reference D update: the D loss alone on the prediction G made before its own update.
    inputs, target = split_clip(clip, device)
    with torch.no_grad():
        pred = reference.g(inputs)
    reference.opt_d.zero_grad()
    losses.adversarial_d_loss(reference.d(target), reference.d(pred)).backward()
    reference.opt_d.step()
    for p, q in zip(nets.d.parameters(), reference.d.parameters()):
        assert torch.equal(p, q)
    assert all(p.requires_grad for p in nets.d.parameters())  # D is trainable again after G's update


def test_generator_update_uses_adversarial_and_intensity_terms(device):
    cfg = tiny_cfg()
    clip = random_clip(cfg)
    a, b = make_nets(cfg, device=device), make_nets(cfg, device=device)
    train_step(a, cfg, clip, device)
    train_step(b, tiny_cfg(lambda_adv=0.0), clip, device)
    assert any(not torch.equal(p, q) for p, q in zip(a.g.parameters(), b.g.parameters()))


def test_frozen_flownet_receives_no_gradient_and_stays_unchanged(device):
    cfg = tiny_cfg()
    flow_net = FlowNet2SD().to(device).eval().requires_grad_(False)
    estimator = FlowNet2SDFlow(flow_net)
    before = {k: v.clone() for k, v in flow_net.state_dict().items()}
    with_flow = make_nets(cfg, flow=estimator, device=device)
    without = make_nets(cfg, device=device)
    clip = random_clip(cfg)
    parts = train_step(with_flow, cfg, clip, device)
    train_step(without, cfg, clip, device)
    assert "op" in parts and parts["op"] > 0
    assert all(p.grad is None for p in flow_net.parameters())
    assert all(torch.equal(before[k], v) for k, v in flow_net.state_dict().items())
    # The flow term changed the generator's update: its gradient really reached G.
    assert any(not torch.equal(p, q) for p, q in zip(with_flow.g.parameters(), without.g.parameters()))


# ------------------------------------------------------------------------------ fast paths (issue 5)
class CountingModule(torch.nn.Module):
    """Calls `inner` (sharing its parameters) and counts the calls: stands in for a compiled/DDP runner."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, 0

    def forward(self, x):
        self.calls += 1
        return self.inner(x)


def test_adversarial_term_uses_d_run_and_d_update_uses_d_sync():
    # Under DDP, d_sync is the DDP wrapper: it must run only in D's own update (G's term uses d_run).
    cfg = tiny_cfg()
    clip = random_clip(cfg)
    plain, routed = make_nets(cfg), make_nets(cfg)
    routed.d_run, routed.d_sync = CountingModule(routed.d), CountingModule(routed.d)
    train_step(plain, cfg, clip, torch.device("cpu"))
    train_step(routed, cfg, clip, torch.device("cpu"))
    assert (routed.d_run.calls, routed.d_sync.calls) == (1, 2)
    for net in ("g", "d"):
        for p, q in zip(getattr(plain, net).parameters(), getattr(routed, net).parameters()):
            assert torch.equal(p, q)


def test_channels_last_step_matches_contiguous(device):
    cfg = tiny_cfg()
    clip = random_clip(cfg)
    nchw, nhwc = make_nets(cfg, device=device), make_nets(cfg, device=device)
    nhwc.g.to(memory_format=torch.channels_last)
    nhwc.d.to(memory_format=torch.channels_last)
    nhwc.memory_format = torch.channels_last
    a = train_step(nchw, cfg, clip, device)
    b = train_step(nhwc, cfg, clip, device)
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-6) for k in a)
    # Same gradients up to float summation order (compared before Adam, which amplifies noise near 0).
    for net in ("g", "d"):
        grads = [(p.grad, q.grad) for p, q in zip(getattr(nchw, net).parameters(), getattr(nhwc, net).parameters())]
        error = sum((x - y).pow(2).sum() for x, y in grads).sqrt()
        assert error <= 1e-4 * sum(x.pow(2).sum() for x, _ in grads).sqrt()


def test_bf16_autocast_step_keeps_float32_losses(device):
    cfg = tiny_cfg(amp=True)
    nets = make_nets(cfg, device=device)
    nets.precision = make_precision(cfg, device)
    assert nets.precision.dtype == torch.bfloat16 and nets.precision.scaler_g is None
    before = [p.clone() for p in nets.g.parameters()]
    parts = train_step(nets, cfg, random_clip(cfg), device)
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in parts.values())
    assert any(not torch.equal(p, q) for p, q in zip(before, nets.g.parameters()))
    assert all(p.requires_grad for p in nets.d.parameters())


def test_grad_scaler_path_updates_both_networks(device):
    """--amp --amp_dtype fp16 on CUDA: fp16 autocast with one GradScaler per network. The CLI allows fp16 on CUDA
    only (next test), so on the CPU the same scaler path runs under bf16 autocast."""
    cfg = tiny_cfg(amp=True, amp_dtype="fp16")
    nets = make_nets(cfg, device=device)
    if device.type == "cuda":
        nets.precision = make_precision(cfg, device)
        assert nets.precision.dtype == torch.float16
    else:
        nets.precision = Precision("cpu", torch.bfloat16, torch.amp.GradScaler("cpu"), torch.amp.GradScaler("cpu"))
    before = {net: [p.clone() for p in getattr(nets, net).parameters()] for net in ("g", "d")}
    parts = train_step(nets, cfg, random_clip(cfg), device)
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in parts.values())
    for net in ("g", "d"):
        assert any(not torch.equal(p, q) for p, q in zip(before[net], getattr(nets, net).parameters()))
    # No step was skipped for inf/NaN gradients: the scales are still the initial 2^16.
    assert nets.precision.scaler_g.get_scale() == nets.precision.scaler_d.get_scale() == 2.0**16


def test_fp16_amp_on_cpu_is_a_user_error():
    with pytest.raises(FFPError, match="--amp_dtype fp16 needs a CUDA device"):
        make_precision(tiny_cfg(amp=True, amp_dtype="fp16"), torch.device("cpu"))


def test_speed_flags_parse_bare_and_with_values():
    cfg = config_from_namespace(parse_args(["--amp", "--channels_last", "--compile", "false"]))
    assert (cfg.amp, cfg.channels_last, cfg.compile, cfg.amp_dtype) == (True, "on", False, "bf16")
    assert use_channels_last(cfg, torch.device("cpu"))
    assert not use_channels_last(tiny_cfg(channels_last="off"), torch.device("cuda"))
    with pytest.raises(FFPError, match="--channels_last"):
        parse_args(["--channels_last", "maybe"])


def test_channels_last_auto_times_both_formats_on_the_cpu_without_touching_the_run():
    cfg = tiny_cfg()
    nets = make_nets(cfg)
    weights = copy.deepcopy(nets.g.state_dict())
    rng = torch.get_rng_state()
    memory_format, note = choose_memory_format(cfg, torch.device("cpu"), nets.g, nets.d)
    assert memory_format in (torch.channels_last, torch.contiguous_format)
    assert note.startswith("--channels_last auto: ") and "NCHW" in note and "channels-last" in note
    assert torch.equal(torch.get_rng_state(), rng)  # the run's random stream is untouched
    assert all(torch.equal(v, weights[k]) for k, v in nets.g.state_dict().items())
    assert all(p.grad is None for p in nets.g.parameters())
    assert use_channels_last(cfg, torch.device("cpu")) is None and use_channels_last(cfg, torch.device("cuda"))
    fixed = choose_memory_format(tiny_cfg(channels_last="off"), torch.device("cpu"), nets.g, nets.d)
    assert fixed == (torch.contiguous_format, "--channels_last off")
    # The run saves the measured format (a resume keeps it); a CUDA run's auto is not measured and stays auto.
    nets.memory_format = memory_format
    saved = with_resolved_speed(cfg, nets, torch.device("cpu")).channels_last
    assert saved == ("on" if memory_format == torch.channels_last else "off")
    assert with_resolved_speed(cfg, nets, torch.device("cuda")).channels_last == "auto"


def test_generator_loss_is_the_weighted_sum_with_the_flow_term_in_pixels():
    """G's total is Σ λ·term with L_op exactly flow_loss of the classical estimator's pixel flow: no scale hides in
    the step (a 1/400 once did; see docs/method.md 'Units of the motion loss')."""
    from flownet import ClassicalFlow
    from training.step import generator_losses

    cfg = tiny_cfg(lambda_op=2.0, lambda_gd=0.5, lambda_adv=0.1)
    flow = ClassicalFlow().requires_grad_(False)
    nets = make_nets(cfg, flow=flow)
    inputs, target = split_clip(random_clip(cfg), torch.device("cpu"))
    pred, parts = generator_losses(nets, cfg, inputs, target)
    direct = losses.flow_loss(flow, inputs[:, -3:], pred, target)
    assert torch.allclose(parts["op"], direct)
    weighted = (
        cfg.lambda_int * parts["int"]
        + cfg.lambda_gd * parts["gd"]
        + cfg.lambda_op * parts["op"]
        + cfg.lambda_adv * parts["adv"]
    )
    assert torch.allclose(parts["g_total"], weighted)


@pytest.mark.slow
def test_compiled_step_matches_eager(device):
    """--compile: G and D compiled as train.py compiles them (training.nets.accelerate) give the eager step's losses
    and updates, up to the float summation order of fused kernels (compiling takes ~40 s on the 2-core CPU)."""
    from training.distributed import DistInfo
    from training.nets import accelerate

    cfg = tiny_cfg(compile=True)
    clip = random_clip(cfg)
    eager, compiled = make_nets(cfg, device=device), make_nets(cfg, device=device)
    initial = copy.deepcopy(eager)
    compiled = accelerate(compiled, cfg, device, DistInfo(), make_precision(cfg, device))
    assert compiled.g_run is not compiled.g and compiled.d_run is not compiled.d
    a = train_step(eager, cfg, clip, device)
    b = train_step(compiled, cfg, clip, device)
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-5) for k in a)
    for net in ("g", "d"):
        weights = [getattr(nets, net).state_dict() for nets in (initial, eager, compiled)]
        relative = relative_update_error(*weights)
        assert relative <= 1e-2, f"{net}: compiled update differs by {relative:.3g}"
