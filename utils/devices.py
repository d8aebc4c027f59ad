"""The device a command runs on, its seeds, and the machine set-up of commands that score with a trained model."""

from __future__ import annotations

import dataclasses
import random
from typing import TYPE_CHECKING

import numpy as np

from errors import FFPError

from .threads import configure_threads

if TYPE_CHECKING:
    import torch

# torch is imported inside the functions that use it: detect.py with an ONNX model runs without torch installed.


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so a run is repeatable."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str | None) -> torch.device:
    """'auto'/None -> cuda when available else cpu; otherwise the named device (FFPError if CUDA is asked for but
    absent)."""
    import torch

    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FFPError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
    return device


def set_up_machine(cfg):
    """For a command that scores with a trained model (eval.py, detect.py): apply cfg.threads (printing
    `configure_threads`' warning when the cores look taken) and resolve cfg.device. Returns (cfg with the resolved
    device, so that data workers are chosen for the device that runs, that torch.device). FFPError as
    `resolve_device`."""
    warning = configure_threads(cfg.threads)
    if warning:
        print(warning, flush=True)
    device = resolve_device(cfg.device)
    return dataclasses.replace(cfg, device=str(device)), device
