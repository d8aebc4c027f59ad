"""One FFP training iteration: a generator update, then a discriminator update.

Tensors: `clip` is the uint8 batch B×(T+1)×3×H×W from the loader; networks see [-1, 1].
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.profiler import record_function

from config import Config
from dataset import to_network_range
from errors import FFPError
from evaluation.scores import psnr_per_frame
from training import losses
from training.flow_cache import RealFlowCache

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Precision:
    """How the step runs the networks: autocast dtype (None = fp32) and, for fp16, one GradScaler per optimizer.

    Only the networks' forward passes run under autocast; their outputs are cast back to float32, so the
    losses, the PSNR and the flow estimator (whose 2×2 solve divides by a determinant ≥ 9e-6, below fp16's
    normal range) stay in float32.
    """

    device_type: str = "cpu"
    dtype: torch.dtype | None = None
    scaler_g: torch.amp.GradScaler | None = None
    scaler_d: torch.amp.GradScaler | None = None

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast context for a network forward (a no-op context in fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)


@dataclass
class Nets:
    """What a step updates: networks, their optimizers, and the frozen flow estimator (or None).

    `g` and `d` are the plain modules (their state_dicts are what checkpoints hold). The optional runners
    are what the step calls instead, sharing the same parameters: `g_run` (compiled and/or DDP-wrapped G),
    `d_run` (compiled D, never DDP: used for G's adversarial term) and `d_sync` (DDP-wrapped D, used only
    in D's own update). Unset runners fall back to `g`, `d` and `d_run`.
    """

    g: nn.Module
    d: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    flow: nn.Module | None
    real_flow: RealFlowCache | None = None  # --cache_flow: the real frames' flow, computed once per frame pair
    g_run: nn.Module | None = None
    d_run: nn.Module | None = None
    d_sync: nn.Module | None = None
    precision: Precision = field(default_factory=Precision)
    memory_format: torch.memory_format = torch.contiguous_format
    memory_format_note: str = ""  # how the format was chosen (--channels_last auto measures it on CPU), for the log

    def __post_init__(self):
        # `is None`, not `or`: a module defining __len__ (nn.Sequential) would be falsy when empty.
        self.g_run = self.g if self.g_run is None else self.g_run
        self.d_run = self.d if self.d_run is None else self.d_run
        self.d_sync = self.d_run if self.d_sync is None else self.d_sync


# --channels_last auto on devices where it is not measured. CUDA: cuDNN's tensor-core kernels are NHWC. Other
# devices: off. On the CPU the faster format depends on the instruction set and the network size (oneDNN's NHWC
# step was faster on an AVX-512 EPYC and slower on an AVX2-only one; docs/performance.md), so
# training.nets.choose_memory_format times both there.
CHANNELS_LAST_AUTO = {"cuda": True}


def use_channels_last(cfg: Config, device: torch.device) -> bool | None:
    """Whether G, D and their inputs use the channels-last (NHWC) memory format: --channels_last on/off, or auto's
    choice for `device`; None when auto is to be measured (the CPU)."""
    if cfg.channels_last == "auto":
        return None if device.type == "cpu" else CHANNELS_LAST_AUTO.get(device.type, False)
    return cfg.channels_last == "on"


def make_precision(cfg: Config, device: torch.device) -> Precision:
    """--amp / --amp_dtype -> Precision for `device`. fp16 (with GradScalers) needs CUDA: FFPError otherwise."""
    if not cfg.amp:
        return Precision(device.type)
    dtype = AMP_DTYPES[cfg.amp_dtype]
    if dtype == torch.float16 and device.type != "cuda":
        raise FFPError(
            f"--amp_dtype fp16 needs a CUDA device (got --device {device}); CPU autocast runs in "
            f"bf16: use --amp_dtype bf16 or drop --amp"
        )
    if dtype == torch.float16:
        # fp16 gradients underflow without loss scaling; separate scalers because G's and D's losses
        # (and so their safe scales) differ by orders of magnitude.
        return Precision(device.type, dtype, torch.amp.GradScaler("cuda"), torch.amp.GradScaler("cuda"))
    return Precision(device.type, dtype)


def split_clip(
    clip: torch.Tensor, device: torch.device, memory_format: torch.memory_format = torch.contiguous_format
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 B×(T+1)×3×H×W -> (inputs B×3T×H×W, target B×3×H×W), float in [-1, 1] on `device`."""
    clip = to_network_range(clip.to(device, non_blocking=True))
    b, t1, c, h, w = clip.shape
    inputs, target = clip[:, :-1].reshape(b, (t1 - 1) * c, h, w), clip[:, -1]
    return inputs.contiguous(memory_format=memory_format), target.contiguous(memory_format=memory_format)


def generator_losses(
    nets: Nets, cfg: Config, inputs: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Forward G and its weighted loss: (prediction B×3×H×W float32, dict of loss tensors incl. 'g_total')."""
    assert nets.g_run is not None and nets.d_run is not None  # set by Nets.__post_init__
    with nets.precision.autocast(), record_function("G forward"):
        pred = nets.g_run(inputs).float()
    with record_function("intensity + gradient losses"):
        parts = {"int": losses.intensity_loss(pred, target), "gd": losses.gradient_loss(pred, target)}
    total = cfg.lambda_int * parts["int"] + cfg.lambda_gd * parts["gd"]
    if nets.flow is not None and cfg.lambda_op > 0:
        last_input = inputs[:, -3:]
        flow_real = nets.real_flow(last_input, target) if nets.real_flow is not None else None
        parts["op"] = losses.flow_loss(nets.flow, last_input, pred, target, flow_real)
        total = total + cfg.lambda_op * parts["op"]
    if cfg.lambda_adv > 0:
        # d_run is never the DDP wrapper: D's parameters are frozen here, and a DDP forward would arm its
        # reducer to expect D gradients that never come (error at the next DDP forward). The gradient
        # w.r.t. `pred` needs no synchronisation: it flows into G, whose DDP wrapper averages G's grads.
        with nets.precision.autocast(), record_function("D forward (G's adversarial term)"):
            d_fake = nets.d_run(pred).float()
        parts["adv"] = losses.adversarial_g_loss(d_fake)
        total = total + cfg.lambda_adv * parts["adv"]
    parts["g_total"] = total
    return pred, parts


def _update(
    loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None, name: str
) -> None:
    """backward + optimizer step, through the GradScaler when fp16 autocast uses one; `name` labels the two
    profiler ranges (bench/profile_step.py)."""
    with record_function(f"{name} backward"):
        (loss if scaler is None else scaler.scale(loss)).backward()
    with record_function(f"{name} Adam"):
        if scaler is None:
            optimizer.step()
            return
        scaler.step(optimizer)  # skipped (and the scale lowered) when the scaled gradients overflowed
        scaler.update()


def train_step(nets: Nets, cfg: Config, clip: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
    """One G update then one D update; returns detached loss tensors (no host sync here)."""
    inputs, target = split_clip(clip, device, nets.memory_format)

    # Generator: D is frozen during G's backward so no gradient ever lands in D's .grad from G's loss.
    nets.d.requires_grad_(False)
    nets.opt_g.zero_grad(set_to_none=True)
    pred, parts = generator_losses(nets, cfg, inputs, target)
    _update(parts["g_total"], nets.opt_g, nets.precision.scaler_g, "G")  # backward through flow, D and G
    nets.d.requires_grad_(True)

    # Discriminator: sees the generated frame detached, so its loss cannot reach G.
    if cfg.lambda_adv > 0:
        nets.opt_d.zero_grad(set_to_none=True)
        fake = pred.detach()
        assert nets.d_sync is not None  # set by Nets.__post_init__
        with nets.precision.autocast(), record_function("D forwards (real, generated)"):
            d_real, d_fake = nets.d_sync(target).float(), nets.d_sync(fake).float()
        d_loss = losses.adversarial_d_loss(d_real, d_fake)
        _update(d_loss, nets.opt_d, nets.precision.scaler_d, "D")
        parts["d"] = d_loss
    with torch.no_grad():
        parts["psnr"] = train_psnr(pred, target)
    return {k: v.detach() for k, v in parts.items()}


def train_psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean PSNR (dB) of the batch on [0, 1] frames, as a tensor (no host sync); the evaluation's PSNR."""
    return psnr_per_frame(pred.float(), target.float()).mean()
