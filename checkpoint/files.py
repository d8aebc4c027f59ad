"""Checkpoint files: one dict per file, written atomically, read with weights_only=True (no code execution).

Training checkpoint keys: format_version, net_g, net_d, optim_g, optim_d, sched_g, sched_d, step, config, rng,
history, flownet (the estimator's class name, its checkpoint path, the motion loss's units "pixels", and what else
defines its output), selected_with_test_labels, data_fingerprint, train_seconds, fps (the training footage's
frame rate in frames/s, None when unknown), init_from (a fine-tuned run's source). A shipped generator-only
checkpoint has format_version, net_g, config, step, history, flownet, selected_with_test_labels, train_seconds,
fps (with fps_origin when it was filled in for an older file) and psnr_stats. Files of an older format are read
in today's terms (checkpoint/upgrade.py).
"""

from __future__ import annotations

import io
import pickle
import re
import warnings
import zipfile
from pathlib import Path

import torch
from torch import nn

from config import Config, validate
from errors import FFPError
from utils.files import atomic_write_bytes

from .upgrade import NOTES_KEY, upgrade


def _non_finite(state: dict) -> str | None:
    """Name of the first floating tensor of net_g/net_d holding NaN/inf, or None (one check per save)."""
    for part in ("net_g", "net_d"):
        for name, tensor in (state.get(part) or {}).items():
            if torch.is_tensor(tensor) and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                return f"{part}.{name}"
    return None


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Serialise `state` in memory, then write it atomically (temp file, fsync, os.replace).

    Refuses (FFPError) to write network weights holding NaN/inf, so a diverged run can never replace the
    last good checkpoint; a failed write (disk full, permissions) is an FFPError naming the file, and the
    previous file at `path` is left as it was.
    """
    path = Path(path)
    state = {k: v for k, v in state.items() if k != NOTES_KEY}  # what reading an older format converted: not saved
    bad = _non_finite(state)
    if bad is not None:
        raise FFPError(
            f"non-finite weights ({bad}) at step {state.get('step', '?')}: not saving {path}, the "
            f"last good checkpoint there is kept (training diverged; try a lower --lr_g)"
        )
    buffer = io.BytesIO()
    torch.save(state, buffer)
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as exc:
        raise FFPError(
            f"cannot write checkpoint {path}: {exc.strerror or exc} (the previous file, if any, is unchanged)"
        ) from None


def _reason(exc: BaseException) -> str:
    """The informative line of a torch.load error (the line naming the refused global, else the first)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "GLOBAL" in line or line.startswith("Unsupported"):
            return line
    first = lines[0].split(". ")[0].rstrip(".") if lines else ""  # torch's zip errors run on for sentences
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _not_serialised(path: Path) -> str | None:
    """Why the file cannot be a torch.save file (zip archive or binary pickle), or None when it may be one."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        return exc.strerror or str(exc)
    if not head:
        return "the file is empty"
    if head[:4] == b"PK\x03\x04" or (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5):
        return None
    return f"not a torch.save file: it starts with {head!r}"


def _damaged(path: Path) -> str | None:
    """Why a torch.save zip archive fails its integrity check, or None when every member's CRC-32 matches.

    torch.load does not verify the CRCs the archive stores, so a flipped bit in a weight would load silently;
    zipfile.testzip() reads every member and checks it. (Legacy non-zip pickles carry no checksum.)
    """
    if not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        return f"damaged archive: {exc}"
    return f"its member {bad} fails the CRC-32 check: the file was damaged after it was written" if bad else None


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint dict on CPU with weights_only=True; FFPError naming the file for any bad file.

    weights_only refuses pickled code (a crafted file cannot execute anything), so a file holding
    anything but tensors and plain containers is rejected rather than trusted. Every member of the zip
    archive is checked against its stored CRC-32 first, so a damaged file (one flipped bit) is refused.
    Weights saved from inside a DataParallel/DDP or torch.compile wrapper ('module.', '_orig_mod.' name prefixes)
    are renamed to the plain module's names, with one printed note (`strip_wrapper_prefixes`). A file of an older
    format is returned in today's terms (checkpoint.upgrade); one of a newer format is refused.
    """
    path = Path(path)
    if not path.is_file():
        raise FFPError(f"checkpoint {path} does not exist" + (" (it is a folder)" if path.is_dir() else ""))
    why = _not_serialised(path) or _damaged(path)
    if why is not None:
        raise FFPError(f"checkpoint {path} is truncated, damaged or not a checkpoint ({why})")
    state = _checked_layout(_safe_load(path), path)
    _check_config(state["config"], path)
    upgrade(state, path)
    note = strip_wrapper_prefixes(state, path)
    if note:
        print(note, flush=True)
    return state


def _safe_load(path: Path) -> object:
    """torch.load on CPU with weights_only=True; FFPError naming the file when it cannot be read."""
    try:
        with warnings.catch_warnings():  # e.g. 'Detected pickle protocol 4': the error below says it all
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" in str(exc):
            raise _refused(path, exc) from None
        raise FFPError(f"checkpoint {path} is truncated, damaged or not a checkpoint ({_reason(exc)})") from None
    except MemoryError:
        raise
    except Exception as exc:  # torch.load raises many types for a damaged or foreign file (KeyError for text)
        raise FFPError(f"checkpoint {path} is truncated, damaged or not a checkpoint ({_reason(exc)})") from None


def _checked_layout(state: object, path: Path) -> dict:
    """`state`, once checked: FFPError unless it is a dict with 'config' and state dicts of named tensors under
    'net_g' (and 'net_d', when present)."""
    if not isinstance(state, dict) or "net_g" not in state or "config" not in state:
        raise FFPError(f"checkpoint {path} is not an FFP checkpoint (expected a dict with 'net_g' and 'config')")
    for part in ("net_g", "net_d"):
        weights = state.get(part, {})
        if not isinstance(weights, dict) or not all(
            isinstance(k, str) and torch.is_tensor(v) for k, v in weights.items()
        ):
            raise FFPError(f"checkpoint {path}: '{part}' is not a state dict of named tensors")
    return state


def _refused(path: Path, exc: BaseException) -> FFPError:
    """The one-line refusal of a file weights_only would not read: the object types torch named (e.g.
    posix.system, numpy.dtype), and what a user can do without code that trusts the file here."""
    found = sorted(set(re.findall(r"GLOBAL ([\w.]+)", str(exc))))
    kinds = ", ".join(found) if found else _reason(exc)
    return FFPError(
        f"checkpoint {path} was refused by safe loading (weights_only): it holds pickled objects of type {kinds}, "
        f"which are never unpickled here (they could run code); if the file comes from a source you trust, "
        f"re-save it in Python with those objects replaced by tensors, numbers, strings, lists or dicts "
        f"(torch.load with weights_only=False, convert, torch.save)"
    )


WRAPPER_PREFIXES = {"module.": "DataParallel/DDP", "_orig_mod.": "torch.compile"}


def _unwrapped(key: str) -> tuple[str, str]:
    """(key without its leading wrapper prefixes, the prefixes removed): '_orig_mod.module.conv.weight' ->
    ('conv.weight', '_orig_mod.module.')."""
    removed = ""
    while True:
        prefix = next((p for p in WRAPPER_PREFIXES if key.startswith(p)), None)
        if prefix is None:
            return key, removed
        key, removed = key[len(prefix) :], removed + prefix


def strip_wrapper_prefixes(state: dict, path: Path) -> str | None:
    """Rename, in place, the net_g/net_d tensors of weights saved from inside a wrapper — 'module.'
    (DataParallel/DDP), '_orig_mod.' (torch.compile), or both in either order — to the plain module's names.

    Returns one line naming the prefixes and the file when any were removed, else None. A state dict whose
    stripped names would collide is left as it is (the strict loader then names what does not fit).
    """
    removed: dict[str, None] = {}
    for part in ("net_g", "net_d"):
        weights = state.get(part)
        if not weights:
            continue
        renamed = {_unwrapped(k)[0]: v for k, v in weights.items()}
        found = {_unwrapped(k)[1] for k in weights} - {""}
        if not found or len(renamed) != len(weights):
            continue
        state[part] = renamed
        removed.update(dict.fromkeys(sorted(found)))
    if not removed:
        return None
    kinds = sorted({WRAPPER_PREFIXES[p] for p in WRAPPER_PREFIXES if any(p in r for r in removed)})
    return (
        f"note: checkpoint {path}: weight names carry the prefix {', '.join(repr(r) for r in removed)} "
        f"({' and '.join(kinds)} wrapper); read without it"
    )


def _check_config(config, path: Path) -> None:
    """The stored config must rebuild a valid Config (FFPError naming the checkpoint otherwise)."""
    if not isinstance(config, dict):
        raise FFPError(f"checkpoint {path}: 'config' is a {type(config).__name__}, expected a dict")
    try:
        validate(Config.from_dict(config))
    except FFPError as exc:
        raise FFPError(f"checkpoint {path} holds an invalid config: {exc}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise FFPError(f"checkpoint {path} holds an invalid config ({type(exc).__name__}: {exc})") from None


def load_state_strict(module: nn.Module, state_dict: dict, what: str) -> None:
    """load_state_dict(strict=True), but a mismatch names the tensors that disagree in one message."""
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
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


def model_fps(state: dict) -> tuple[float | None, str]:
    """(frame rate of the footage the model was trained on in frames/s, where that comes from); (None, why) when
    unknown. `state` as load_checkpoint returns it."""
    fps = state.get("fps")
    if isinstance(fps, (int, float)) and fps > 0:
        return float(fps), state.get("fps_origin", "stored in the checkpoint")
    return None, "the checkpoint does not know its training footage's frame rate"


def checkpoint_config(state: dict) -> Config:
    """The config a checkpoint (as load_checkpoint returns it) was trained with."""
    return Config.from_dict(state["config"])
