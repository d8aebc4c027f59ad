"""FlowNet2-SD (small-displacement FlowNet of FlowNet 2.0), laid out so NVIDIA flownet2-pytorch checkpoints load.

The parameter names and shapes follow NVIDIA's `FlowNetSD` (batchNorm=False) exactly, so
`FlowNet2-SD_checkpoint.pth.tar` loads with `strict=True`: 60 tensors, 45,371,666 parameters.

Units: `forward` returns flow in PIXELS of the input, the raw prediction ÷ 20 (= × 0.05). FlowNet-SD was
trained on ground-truth flow × 20 (unlike FlowNet-S/C, trained on flow ÷ 20), so its raw predict_flow2 is
pixel flow × 20. Two sources agree: NVIDIA's own FlowNet2 divides its SD branch by `div_flow` = 20 before
warping an image with it (warping needs pixels), and flownet2-tf's FlowNet-SD — the network the official
FFP code calls — multiplies the prediction by 0.05. NVIDIA's stand-alone `FlowNet2SD.forward` instead
multiplies by 20, which gives 400 × pixel flow (NVIDIA/flownet2-pytorch issue #37 says so; its maintainer
answered that the product is fine, without numbers — no FlowNet2-SD weights were available here to measure
an EPE). Whichever reading is right, this forward equals the official FFP code's flow (raw × 0.05), so the
FlowNet2-SD loss matches the official one; every other estimator returns pixels, the units of that flow.

The network itself expects RGB in [0, 255] with H and W multiples of 64; `flownet.estimator` wraps it
for the project's [-1, 1] frames of any size.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from errors import FFPError

DEFAULT_FLOWNET2SD_PATH = Path(__file__).resolve().parent / "pretrained" / "FlowNet2-SD.pth"
# NVIDIA's release name; accepted beside the default path so users need not rename the download.
OFFICIAL_CHECKPOINT_NAME = "FlowNet2-SD_checkpoint.pth.tar"

# (name, in, out, stride) of the encoder, in order; names match NVIDIA's state_dict keys.
_ENCODER = (
    ("conv0", 6, 64, 1),
    ("conv1", 64, 64, 2),
    ("conv1_1", 64, 128, 1),
    ("conv2", 128, 128, 2),
    ("conv2_1", 128, 128, 1),
    ("conv3", 128, 256, 2),
    ("conv3_1", 256, 256, 1),
    ("conv4", 256, 512, 2),
    ("conv4_1", 512, 512, 1),
    ("conv5", 512, 512, 2),
    ("conv5_1", 512, 512, 1),
    ("conv6", 512, 1024, 2),
    ("conv6_1", 1024, 1024, 1),
)
# Decoder level k: (k, encoder channels of conv{k}_1, deconv{k} input channels, deconv{k} output channels).
# deconv5 reads conv6_1; deeper levels read the previous concat (encoder + deconv + 2 flow channels).
_DECODER = ((5, 512, 1024, 512), (4, 512, 1026, 256), (3, 256, 770, 128), (2, 128, 386, 64))
DIV_FLOW = 20.0  # FlowNet-SD's training-target scale: the network predicts pixel flow × 20 at 1/4 resolution
RGB_MAX = 255.0


def _conv(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
    """3×3 conv + LeakyReLU(0.1), in a Sequential so the keys read `<name>.0.weight` like NVIDIA's."""
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, stride, 1), nn.LeakyReLU(0.1))


def _deconv(in_ch: int, out_ch: int) -> nn.Sequential:
    """4×4 stride-2 transposed conv (exact ×2 upsampling) + LeakyReLU(0.1)."""
    return nn.Sequential(nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1), nn.LeakyReLU(0.1))


class FlowNet2SD(nn.Module):
    """FlowNet2-SD with NVIDIA flownet2-pytorch parameter names (no batch norm).

    forward(inputs): inputs B×3×2×H×W, two RGB frames on dim 2, values in [0, 255], H and W multiples
    of 64 (six stride-2 convs). Returns B×2×H×W flow (x, y) in pixels from frame 0 to frame 1.
    Unlike NVIDIA's class, training mode also returns only this full-resolution flow: the project
    never trains this network (it is a frozen loss), so the multi-scale training outputs are not kept.
    """

    conv0: nn.Sequential  # registered by add_module in __init__, like every conv/deconv below

    def __init__(self) -> None:
        super().__init__()
        for name, in_ch, out_ch, stride in _ENCODER:
            self.add_module(name, _conv(in_ch, out_ch, stride))
        # Registration order = NVIDIA's, so state_dict() lists keys in the same order as its checkpoints.
        for k, _, deconv_in, deconv_out in _DECODER:
            self.add_module(f"deconv{k}", _deconv(deconv_in, deconv_out))
        for k, enc_ch, _, deconv_out in _DECODER:
            # inter_conv has no activation; the Sequential only reproduces NVIDIA's key names.
            concat_ch = enc_ch + deconv_out + 2
            self.add_module(f"inter_conv{k}", nn.Sequential(nn.Conv2d(concat_ch, deconv_out, 3, 1, 1)))
        self.predict_flow6 = nn.Conv2d(1024, 2, 3, 1, 1)
        for k, _, _, deconv_out in _DECODER:
            self.add_module(f"predict_flow{k}", nn.Conv2d(deconv_out, 2, 3, 1, 1))
        for k in (6, 5, 4, 3):
            self.add_module(f"upsampled_flow{k}_to_{k - 1}", nn.ConvTranspose2d(2, 2, 4, 2, 1))
        self._init_like_nvidia()

    def _init_like_nvidia(self) -> None:
        """Xavier-uniform weights, zero biases: only random-weight tests see them; real use loads a checkpoint."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.xavier_uniform_(m.weight)
                assert m.bias is not None  # every conv of this network is built with bias=True
                nn.init.zeros_(m.bias)

    @staticmethod
    def normalise(inputs: torch.Tensor) -> torch.Tensor:
        """B×3×2×H×W in [0, 255] -> B×6×H×W: minus the per-sample, per-channel mean over both frames, / 255."""
        mean = inputs.flatten(2).mean(dim=-1)[:, :, None, None, None]
        x = (inputs - mean) / RGB_MAX
        return torch.cat((x[:, :, 0], x[:, :, 1]), dim=1)

    def _encode(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """Encoder features keyed by level k (conv{k}_1 output; level 6 is the bottleneck)."""
        feats = {}
        x = self.conv0(x)
        for k in range(1, 7):
            x = getattr(self, f"conv{k}_1")(getattr(self, f"conv{k}")(x))
            feats[k] = x
        return feats

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """inputs B×3×2×H×W in [0, 255] (H, W multiples of 64) -> B×2×H×W pixel flow frame 0 -> frame 1."""
        _check_multiple_of_64(inputs)
        feats = self._encode(self.normalise(inputs))
        features = feats[6]
        flow = self.predict_flow6(features)
        for k in (5, 4, 3, 2):
            up_flow = getattr(self, f"upsampled_flow{k + 1}_to_{k}")(flow)
            up_feat = getattr(self, f"deconv{k}")(features)
            features = torch.cat((feats[k], up_feat, up_flow), dim=1)
            flow = getattr(self, f"predict_flow{k}")(getattr(self, f"inter_conv{k}")(features))
        return F.interpolate(flow / DIV_FLOW, scale_factor=4, mode="bilinear", align_corners=False)


def _check_multiple_of_64(inputs: torch.Tensor) -> None:
    """Raise ValueError (a programming error, not a user one) for a wrong input layout."""
    if inputs.dim() != 5 or inputs.shape[1:3] != (3, 2) or inputs.shape[-1] % 64 or inputs.shape[-2] % 64:
        raise ValueError(f"FlowNet2SD expects B×3×2×H×W with H, W multiples of 64, got {tuple(inputs.shape)}")


def missing_checkpoint_message(path: str | os.PathLike) -> str:
    """One-line explanation of where the FlowNet2-SD checkpoint goes and how to train without it."""
    return (
        f"FlowNet2-SD checkpoint not found: {path}. Save NVIDIA's {OFFICIAL_CHECKPOINT_NAME} as "
        f"{DEFAULT_FLOWNET2SD_PATH} (or keep its name in that folder), or pass --flownet_ckpt PATH; to train "
        f"without it use `--flownet classical` (weights-free optical flow) or `--flownet none` (no motion loss)"
    )


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file: {'state_dict': ...} or a bare state dict; 'module.' prefix removed.

    weights_only=True: a checkpoint is data, and unpickling arbitrary objects would run code from the file.
    """
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any parse failure (bad zip, bad pickle, refused global, ...) = not a checkpoint
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FFPError(
            f"{path}: not a loadable weights-only PyTorch checkpoint ({reason[:200]}); if the file "
            f"is trusted but holds other objects, re-save only its tensors with torch.save"
        ) from exc
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise FFPError(f"{path}: expected a FlowNet2-SD checkpoint (a state dict, or a dict with 'state_dict')")
    return {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in obj.items()}


def _state_dict_mismatches(expected: Mapping[str, torch.Tensor], got: Mapping[str, torch.Tensor]) -> list[str]:
    """Human-readable disagreements between two state dicts (missing, unexpected, wrong shape)."""
    problems = [f"missing {k}" for k in expected if k not in got]
    problems += [f"unexpected {k}" for k in got if k not in expected]
    problems += [
        f"{k} shape {tuple(got[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in got and got[k].shape != v.shape
    ]
    return problems


def load_flownet2sd(path: str | os.PathLike, device: str | torch.device = "cpu") -> FlowNet2SD:
    """A FlowNet2SD with the weights of `path`, on `device` (not frozen here; see build_flow_estimator).

    Accepts NVIDIA's FlowNet2-SD_checkpoint.pth.tar ({'epoch', 'state_dict', 'best_EPE'}), the same file
    renamed, or a bare state dict, with or without a DataParallel 'module.' prefix.
    Raises FFPError for a missing file, a file that is not a checkpoint, or wrong keys/shapes.
    """
    path = Path(path)
    if not path.is_file():
        raise FFPError(missing_checkpoint_message(path))
    state = _read_state_dict(path)
    net = FlowNet2SD()
    problems = _state_dict_mismatches(net.state_dict(), state)
    if problems:
        more = f" (+{len(problems) - 4} more)" if len(problems) > 4 else ""
        raise FFPError(f"{path}: not a FlowNet2-SD state dict: {'; '.join(problems[:4])}{more}")
    net.load_state_dict(state, strict=True)
    return net.to(device)
