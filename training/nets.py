"""The run's networks: generator, discriminator, their Adam optimizers and LR schedules, the frozen flow estimator,
and the runners around them (--compile, DDP)."""

from __future__ import annotations

import copy
import dataclasses
import time
from typing import cast

import torch
from torch import nn
from torch.optim.lr_scheduler import MultiStepLR

from config import Config
from flownet import build_flow_estimator
from model import Discriminator, Generator, init_weights
from training.distributed import DistInfo, wrap_ddp
from training.flow_cache import RealFlowCache, flow_cache_bytes
from training.step import Nets, Precision, use_channels_last


def build_nets(cfg: Config, device: torch.device, windows: int = 0) -> Nets:
    """Generator, discriminator (official init), Adam optimizers and the frozen flow estimator; `windows`: the
    training windows, whose real frames' flows --cache_flow auto caches only when they all fit --cache_max_gb.

    G and D take the --channels_last memory format before the optimizers exist, so the optimizer state
    (and a resumed one, copied in) shares the parameters' layout.
    """
    g = Generator(cfg.in_frames, cfg.g_widths)
    d = Discriminator(cfg.d_widths)
    init_weights(g)
    init_weights(d)
    memory_format, note = choose_memory_format(cfg, device, g, d)
    # (torch's stubs lack the device + memory_format overload of Module.to that the runtime has)
    g = g.to(device, memory_format=memory_format)  # type: ignore[call-overload]
    d = d.to(device, memory_format=memory_format)  # type: ignore[call-overload]
    flow, flow_choice = build_flow_estimator(cfg.flownet, cfg.flownet_ckpt, device)
    if flow is not None and flow_choice in FLOW_FOLLOWS_FORMAT:
        flow = flow.to(memory_format=memory_format)  # type: ignore[call-overload]
    opt_g = torch.optim.Adam(g.parameters(), lr=cfg.lr_g, betas=cfg.adam_betas)
    opt_d = torch.optim.Adam(d.parameters(), lr=cfg.lr_d, betas=cfg.adam_betas)
    real_flow = real_flow_cache(cfg, device, flow, flow_choice, windows)
    return Nets(g, d, opt_g, opt_d, flow, real_flow, memory_format=memory_format, memory_format_note=note)


# Estimators whose convolutions take the run's memory format: IFNet sees the prediction in G's format, and in a
# format other than its weights' every convolution reorders its input (docs/performance.md). The classical
# estimator chooses its own format per operation (flownet/classical.py).
FLOW_FOLLOWS_FORMAT = ("rife",)
# --cache_flow auto: on for the estimators whose real-frame flow is a large share of the CPU step (RIFE's IFNet:
# about a third of the --preset cpu step; the classical one: 6-7 %, not worth its RAM; docs/performance.md).
# Other devices were not measured: auto leaves it off there.
CACHE_FLOW_AUTO = ("rife",)


def real_flow_cache(
    cfg: Config, device: torch.device, flow: nn.Module | None, choice: str, windows: int
) -> RealFlowCache | None:
    """The real frames' flow cache of --cache_flow (on, or auto's choice when the flows of all `windows` fit), within
    --cache_max_gb (a budget of its own, beside the frame cache's); None without a motion loss."""
    if flow is None or cfg.lambda_op <= 0:
        return None
    fits = flow_cache_bytes(windows, cfg.height, cfg.width) <= cfg.cache_max_gb * 1e9
    auto = device.type == "cpu" and choice in CACHE_FLOW_AUTO and fits
    if cfg.cache_flow == "on" or (cfg.cache_flow == "auto" and auto):
        return RealFlowCache(flow, cfg.cache_max_gb * 1e9)
    return None


FORMATS = {"NCHW": torch.contiguous_format, "channels-last": torch.channels_last}


def with_resolved_speed(cfg: Config, nets: Nets, device: torch.device) -> Config:
    """`cfg` with --channels_last auto replaced by the format it measured on this CPU ('on'/'off') and
    --cache_flow by what `nets` uses, so that the checkpoints record them and a resumed run keeps them (both
    change the last bits)."""
    cache_flow = "on" if nets.real_flow is not None else "off"
    if use_channels_last(cfg, device) is not None:
        return dataclasses.replace(cfg, cache_flow=cache_flow)
    channels_last = "on" if nets.memory_format == torch.channels_last else "off"
    return dataclasses.replace(cfg, channels_last=channels_last, cache_flow=cache_flow)


def choose_memory_format(
    cfg: Config, device: torch.device, g: nn.Module, d: nn.Module
) -> tuple[torch.memory_format, str]:
    """(memory format of G, D and their inputs, how it was chosen). --channels_last on/off decide, and auto on
    CUDA (channels-last). Auto on the CPU times one G+D forward and backward at this run's batch and size in each
    format, after one warm-up pass each, on copies of G and D and inputs from a private random generator, so the
    run's weights and random streams are untouched; the faster format wins. Only G and D are timed: the flow
    estimator, autocast and torch.compile are left out. The choice changes the last bits of CPU results: a run saves
    it (with_resolved_speed), and runs compared bit for bit pin --channels_last."""
    fixed = use_channels_last(cfg, device)
    if fixed is not None:
        how = f"--channels_last {cfg.channels_last}" + (f" ({device.type})" if cfg.channels_last == "auto" else "")
        return (torch.channels_last if fixed else torch.contiguous_format), how
    shape = (cfg.batch_size, 3 * cfg.in_frames, cfg.height, cfg.width)
    inputs = torch.rand(shape, generator=torch.Generator().manual_seed(0), device="cpu").mul(2).sub(1).to(device)
    seconds = {name: _pass_seconds(g, d, inputs, fmt) for name, fmt in FORMATS.items()}
    best = min(seconds, key=lambda name: seconds[name])
    if torch.distributed.is_available() and torch.distributed.is_initialized():  # every rank takes rank 0's choice
        choice = torch.tensor([list(FORMATS).index(best)])
        torch.distributed.broadcast(choice, src=0)
        best = list(FORMATS)[int(choice)]
    timings = ", ".join(f"{name} {s * 1000:.0f} ms" for name, s in seconds.items())
    return FORMATS[best], f"--channels_last auto: {best}, the faster on this CPU ({timings} per G+D pass)"


def _pass_seconds(g: nn.Module, d: nn.Module, inputs: torch.Tensor, memory_format: torch.memory_format) -> float:
    """Wall seconds of one G forward, D forward and backward of both on copies in `memory_format`: the faster of
    two passes after a warm-up pass."""
    g, d = (copy.deepcopy(net).to(inputs.device, memory_format=memory_format) for net in (g, d))  # type: ignore[call-overload]
    x = inputs.contiguous(memory_format=memory_format)

    def one_pass() -> None:
        pred = g(x)
        (pred.square().mean() + d(pred).mean()).backward()

    one_pass()
    times = []
    for _ in range(2):
        start = time.perf_counter()
        one_pass()
        times.append(time.perf_counter() - start)
    return min(times)


def build_schedulers(nets: Nets, cfg: Config) -> list[MultiStepLR]:
    """[G's, D's] learning-rate schedules: ×lr_gamma at each of --lr_drop_steps (the official schedule)."""
    return [MultiStepLR(optimizer, list(cfg.lr_drop_steps), cfg.lr_gamma) for optimizer in (nets.opt_g, nets.opt_d)]


def flow_name(nets: Nets) -> str:
    """The flow estimator's class name as checkpoints record it ('ClassicalFlow', 'FlowNet2SDFlow', 'IFNetFlow',
    'none')."""
    return type(nets.flow).__name__ if nets.flow is not None else "none"


def accelerate(nets: Nets, cfg: Config, device: torch.device, info: DistInfo, precision: Precision) -> Nets:
    """The step's runners around the plain modules (same parameters): --compile and DDP; and --amp's `precision`.

    compile(DDP(module)) is the order that lets torch.compile split its graphs at DDP's gradient buckets.
    G's adversarial term gets a D that is compiled but never DDP-wrapped (see training/step.py); D's own
    update gets the DDP one.
    """

    def fast(module: nn.Module) -> nn.Module:
        return cast(nn.Module, torch.compile(module)) if cfg.compile else module

    def ddp(module: nn.Module) -> nn.Module:
        return wrap_ddp(module, device) if info.enabled else module

    d_run = fast(nets.d)
    d_sync = fast(ddp(nets.d)) if info.enabled else d_run
    return dataclasses.replace(nets, g_run=fast(ddp(nets.g)), d_run=d_run, d_sync=d_sync, precision=precision)
