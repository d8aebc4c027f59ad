"""PatchGAN discriminator of FFP (pix2pix style, no normalisation, sigmoid output)."""

from __future__ import annotations

import torch
from torch import nn


class Discriminator(nn.Module):
    """Scores overlapping 70×70 patches as real (1) or generated (0).

    4×4 convs with `widths` filters (128, 256, 512, 512 officially) and strides 2, 2, 2, 1, LeakyReLU 0.2,
    then a 4×4 stride-1 conv to one channel and a sigmoid.
    Input:  B×3×H×W frame in [-1, 1].  Output: B×1×h×w probabilities in (0, 1).
    """

    STRIDES = (2, 2, 2, 1)

    def __init__(self, widths: tuple[int, ...] = (128, 256, 512, 512)):
        super().__init__()
        if len(widths) != len(self.STRIDES):
            raise ValueError(f"discriminator needs {len(self.STRIDES)} widths, got {widths}")
        layers: list[nn.Module] = []
        in_ch = 3
        for w, s in zip(widths, self.STRIDES):
            layers += [nn.Conv2d(in_ch, w, 4, stride=s, padding=1), nn.LeakyReLU(0.2, inplace=True)]
            in_ch = w
        layers.append(nn.Conv2d(in_ch, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, frame: torch.Tensor) -> torch.Tensor:
        """frame: B×3×H×W in [-1, 1] -> B×1×h×w in (0, 1)."""
        return torch.sigmoid(self.net(frame))


def receptive_field(kernel_strides: list[tuple[int, int]]) -> int:
    """Receptive field (pixels) of a stack of convs given (kernel, stride) pairs, walked from the output back."""
    field = 1
    for kernel, stride in reversed(kernel_strides):
        field = field * stride + (kernel - stride)
    return field


def discriminator_receptive_field(d: Discriminator) -> int:
    """Receptive field of one output unit of `d` (70 for the official layout)."""
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    return receptive_field([(m.kernel_size[0], m.stride[0]) for m in convs])
