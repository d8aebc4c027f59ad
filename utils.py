"""Small helpers shared by every part of the project: the user-error type, seeding, devices, atomic writes."""
from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch


class FFPError(Exception):
    """An error the user can cause and fix (bad path, flag, file). The CLIs print it as one line and exit 1."""


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so a run is repeatable."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str | None) -> torch.device:
    """'auto'/None -> cuda when available else cpu; otherwise the named device (error if CUDA is asked for but absent)."""
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FFPError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
    return device


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` so a crash never leaves a half-written file: temp file, fsync, os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:   # e.g. ENOSPC from write(): name the target
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise


def check_writable(folder: str | os.PathLike, flag: str) -> None:
    """FFPError naming `flag` and `folder` unless files can be created in `folder` (created if missing).

    Call before long work (training, scoring) so an unwritable output folder fails at once, not at the end.
    Probes with a real file, so it is meaningful as root too (where permission bits do not stop writes).
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write_test.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise FFPError(f"{flag} {folder} is not writable: {exc.strerror or exc}") from None


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Text version of `atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def repo_root() -> Path:
    """The folder holding this file (the repository root)."""
    return Path(__file__).resolve().parent


def shared_data_dir() -> Path:
    """`<repo>/../shared/data`, where the real datasets live on the project's machines (may not exist)."""
    return repo_root().parent / "shared" / "data"
