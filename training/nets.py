"""The run's networks: generator, discriminator, their Adam optimizers and LR schedules, the frozen flow estimator,
and the runners around them (--compile, DDP)."""

from __future__ import annotations

import dataclasses
from typing import cast

import torch
from torch import nn
from torch.optim.lr_scheduler import MultiStepLR

from config import Config
from flownet import build_flow_estimator
from model import Discriminator, Generator, init_weights
from training.distributed import DistInfo, wrap_ddp
from training.step import Nets, Precision, use_channels_last


def build_nets(cfg: Config, device: torch.device) -> Nets:
    """Generator, discriminator (official init), Adam optimizers and the frozen flow estimator.

    G and D take the --channels_last memory format before the optimizers exist, so the optimizer state
    (and a resumed one, copied in) shares the parameters' layout.
    """
    g = Generator(cfg.in_frames, cfg.g_widths)
    d = Discriminator(cfg.d_widths)
    init_weights(g)
    init_weights(d)
    memory_format = torch.channels_last if use_channels_last(cfg, device) else torch.contiguous_format
    # (torch's stubs lack the device + memory_format overload of Module.to that the runtime has)
    g = g.to(device, memory_format=memory_format)  # type: ignore[call-overload]
    d = d.to(device, memory_format=memory_format)  # type: ignore[call-overload]
    flow, _ = build_flow_estimator(cfg.flownet, cfg.flownet_ckpt, device)
    opt_g = torch.optim.Adam(g.parameters(), lr=cfg.lr_g, betas=cfg.adam_betas)
    opt_d = torch.optim.Adam(d.parameters(), lr=cfg.lr_d, betas=cfg.adam_betas)
    return Nets(g, d, opt_g, opt_d, flow, memory_format=memory_format)


def build_schedulers(nets: Nets, cfg: Config) -> list[MultiStepLR]:
    """[G's, D's] learning-rate schedules: ×lr_gamma at each of --lr_drop_steps (the official schedule)."""
    return [MultiStepLR(optimizer, list(cfg.lr_drop_steps), cfg.lr_gamma) for optimizer in (nets.opt_g, nets.opt_d)]


def flow_name(nets: Nets) -> str:
    """The flow estimator's class name as checkpoints record it ('ClassicalFlow', 'FlowNet2SDFlow', 'none')."""
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
