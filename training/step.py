"""One FFP training iteration: a generator update, then a discriminator update.

Tensors: `clip` is the uint8 batch B×(T+1)×3×H×W from the loader; networks see [-1, 1].
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from config import Config
from dataset import to_network_range
from training import losses


@dataclass
class Nets:
    """What a step updates: networks, their optimizers, and the frozen flow estimator (or None)."""
    g: nn.Module
    d: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    flow: nn.Module | None
    flow_scale: float


def split_clip(clip: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 B×(T+1)×3×H×W -> (inputs B×3T×H×W, target B×3×H×W), float in [-1, 1] on `device`."""
    clip = to_network_range(clip.to(device, non_blocking=True))
    b, t1, c, h, w = clip.shape
    return clip[:, :-1].reshape(b, (t1 - 1) * c, h, w), clip[:, -1]


def generator_losses(nets: Nets, cfg: Config, inputs: torch.Tensor, target: torch.Tensor
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Forward G and its weighted loss. Returns (prediction, dict of loss tensors incl. 'g_total')."""
    pred = nets.g(inputs)
    parts = {"int": losses.intensity_loss(pred, target), "gd": losses.gradient_loss(pred, target)}
    total = cfg.lambda_int * parts["int"] + cfg.lambda_gd * parts["gd"]
    if nets.flow is not None and cfg.lambda_op > 0:
        last_input = inputs[:, -3:]
        parts["op"] = losses.flow_loss(nets.flow, last_input, pred, target, nets.flow_scale)
        total = total + cfg.lambda_op * parts["op"]
    if cfg.lambda_adv > 0:
        parts["adv"] = losses.adversarial_g_loss(nets.d(pred))
        total = total + cfg.lambda_adv * parts["adv"]
    parts["g_total"] = total
    return pred, parts


def train_step(nets: Nets, cfg: Config, clip: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
    """One G update then one D update; returns detached loss tensors (no host sync here)."""
    inputs, target = split_clip(clip, device)

    # Generator: D is frozen during G's backward so no gradient ever lands in D's .grad from G's loss.
    nets.d.requires_grad_(False)
    nets.opt_g.zero_grad(set_to_none=True)
    pred, parts = generator_losses(nets, cfg, inputs, target)
    parts["g_total"].backward()
    nets.opt_g.step()
    nets.d.requires_grad_(True)

    # Discriminator: sees the generated frame detached, so its loss cannot reach G.
    if cfg.lambda_adv > 0:
        nets.opt_d.zero_grad(set_to_none=True)
        d_loss = losses.adversarial_d_loss(nets.d(target), nets.d(pred.detach()))
        d_loss.backward()
        nets.opt_d.step()
        parts["d"] = d_loss
    with torch.no_grad():
        parts["psnr"] = train_psnr(pred, target)
    return {k: v.detach() for k, v in parts.items()}


def train_psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean PSNR (dB) of the batch on [0, 1] frames, as a tensor (no host sync)."""
    mse = ((pred - target) / 2).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return (10 * torch.log10(1 / mse)).mean()
