"""FFP losses, as the paper and the official code define them.

All frames are B×3×H×W in [-1, 1]; discriminator outputs are B×1×h×w probabilities in (0, 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import record_function


def intensity_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the predicted and the real frame (scalar)."""
    return torch.mean((pred - target) ** 2)


def _abs_gradients(frame: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """|∂x| and |∂y| of B×C×H×W images, each B×C×H×W.

    The official code takes differences with the right/bottom neighbour after zero padding, so the last
    column/row compares a pixel with 0; we keep that so the loss matches the official numbers.
    """
    padded_x = F.pad(frame, (0, 1, 0, 0))
    padded_y = F.pad(frame, (0, 0, 0, 1))
    dx = (padded_x[..., :, 1:] - padded_x[..., :, :-1]).abs()
    dy = (padded_y[..., 1:, :] - padded_y[..., :-1, :]).abs()
    return dx, dy


def gradient_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean(| |∂x Î| − |∂x I| | + | |∂y Î| − |∂y I| |) (scalar): keeps the prediction's edges sharp."""
    pdx, pdy = _abs_gradients(pred)
    tdx, tdy = _abs_gradients(target)
    return torch.mean((pdx - tdx).abs() + (pdy - tdy).abs())


def adversarial_g_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """Least-squares generator loss mean((D(Î) − 1)² / 2): G wants D to call its frame real."""
    return torch.mean((d_fake - 1) ** 2 / 2)


def adversarial_d_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """Least-squares discriminator loss mean((D(I) − 1)² / 2) + mean(D(Î)² / 2)."""
    return torch.mean((d_real - 1) ** 2 / 2) + torch.mean(d_fake**2 / 2)


def flow_loss(
    flow_net: nn.Module,
    last_input: torch.Tensor,
    pred: torch.Tensor,
    target: torch.Tensor,
    flow_real: torch.Tensor | None = None,
) -> torch.Tensor:
    """Motion constraint mean|F(I_t, Î_{t+1}) − F(I_t, I_{t+1})| in pixels (scalar), paper eq. 6.

    `flow_net` is frozen (its weights never train) but NOT detached: the gradient flows through
    F(I_t, Î_{t+1}) into the generator, as in the official code — that is the point of the term.
    The real-frame flow carries no generator gradient, so it is computed without a graph, or given as `flow_real`
    (B×2×H×W pixels, e.g. from training.flow_cache).
    Pixels are the official code's units (its FlowNet-SD output is pixel flow) and those of every estimator
    of `flownet`; the weight λ_op is chosen per estimator (config.CLASSICAL_LAMBDA_OP for the classical one).
    """
    with record_function("flow of the prediction"):
        flow_pred = flow_net(last_input, pred)
    if flow_real is None:
        with torch.no_grad(), record_function("flow of the real frame"):
            flow_real = flow_net(last_input, target)
    return torch.mean((flow_pred - flow_real).abs())
