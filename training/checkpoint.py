"""Checkpoint I/O: one dict per file, written atomically, read with weights_only=True (no code execution).

Training checkpoint keys: net_g, net_d, optim_g, optim_d, sched_g, sched_d, step, config, rng, history,
flownet (the estimator used and its checkpoint path). A shipped generator-only checkpoint has net_g,
config, step and optional psnr_stats.
"""
from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from utils import FFPError, atomic_write_bytes


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Serialise `state` in memory, then write it atomically (temp file, fsync, os.replace)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint dict on CPU with weights_only=True; FFPError naming the file for any bad file.

    weights_only refuses pickled code (a crafted file cannot execute anything), so a file holding
    anything but tensors and plain containers is rejected rather than trusted.
    """
    path = Path(path)
    if not path.is_file():
        raise FFPError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FFPError(f"checkpoint {path} was refused by safe (weights_only) loading: {first}") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FFPError(f"checkpoint {path} is truncated or not a checkpoint: {first}") from None
    if not isinstance(state, dict) or "net_g" not in state or "config" not in state:
        raise FFPError(f"checkpoint {path} is not an FFP checkpoint (expected a dict with 'net_g' and 'config')")
    return state


def load_state_strict(module: nn.Module, state_dict: dict, what: str) -> None:
    """load_state_dict(strict=True), but a mismatch names the tensors that disagree in one message."""
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            parts.append("shape mismatch (checkpoint vs model): " + "; ".join(shapes[:4]))
        if missing:
            parts.append("missing: " + ", ".join(missing[:4]))
        if unexpected:
            parts.append("unexpected: " + ", ".join(unexpected[:4]))
        raise FFPError(f"{what} does not fit this architecture — " + " | ".join(parts))
    module.load_state_dict(state_dict, strict=True)
