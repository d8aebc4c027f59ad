"""U-Net generator of FFP: 4 past frames in, the next frame out.

Architecture as in the official code: per level two 3×3 conv + ReLU (no normalisation), 2×2 max-pool down,
2×2 stride-2 transposed conv up, skip concatenation, a final 3×3 conv to 3 channels and tanh.
"""

from __future__ import annotations

import torch
from torch import nn


def _double_conv(in_ch: int, out_ch: int) -> nn.Sequential:
    """Two 3×3 convolutions with ReLU, padding 1 so H and W are kept."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_ch, out_ch, 3, padding=1),
        nn.ReLU(inplace=True),
    )


class Generator(nn.Module):
    """U-Net future-frame predictor.

    Input:  B×(3·T)×H×W, T past frames stacked on channels, values in [-1, 1]; H, W divisible by 2**(levels-1).
    Output: B×3×H×W predicted next frame in [-1, 1] (tanh).
    `widths` are the channels per level, (64, 128, 256, 512) in the paper.
    """

    def __init__(self, in_frames: int = 4, widths: tuple[int, ...] = (64, 128, 256, 512)):
        super().__init__()
        self.in_frames = in_frames
        self.widths = tuple(widths)
        self.down = nn.ModuleList()
        in_ch = 3 * in_frames
        for w in widths:
            self.down.append(_double_conv(in_ch, w))
            in_ch = w
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList()
        self.up_conv = nn.ModuleList()
        for w_low, w_high in zip(reversed(widths[1:]), reversed(widths[:-1])):
            self.up.append(nn.ConvTranspose2d(w_low, w_high, 2, stride=2))
            self.up_conv.append(_double_conv(2 * w_high, w_high))
        self.head = nn.Conv2d(widths[0], 3, 3, padding=1)

    @property
    def size_multiple(self) -> int:
        """H and W must be divisible by this (one halving per pooling)."""
        return 2 ** (len(self.widths) - 1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames: B×(3·T)×H×W in [-1, 1] -> B×3×H×W in [-1, 1]."""
        skips = []
        x = frames
        for i, block in enumerate(self.down):
            if i > 0:
                x = self.pool(x)
            x = block(x)
            skips.append(x)
        for up, conv, skip in zip(self.up, self.up_conv, reversed(skips[:-1])):
            x = conv(torch.cat([skip, up(x)], dim=1))
        return torch.tanh(self.head(x))
