"""checkpoint.py's file I/O: an atomic save that a crash, a full disk or Ctrl-C cannot half-write, no non-finite
weights written, and a damaged file (one flipped bit) refused on load."""

from __future__ import annotations

import errno
import os

import pytest
import torch
from helpers import LATEST, files_in, read_state, tiny_args, train_cli

from checkpoint import load_checkpoint, save_checkpoint
from utils import FFPError


def _state(value: float) -> dict:
    return {"net_g": {"w": torch.full((3,), value)}, "net_d": {"w": torch.zeros(2)}, "step": int(value), "config": {}}


def _fail_replace(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _fail_fsync(fd):
    raise OSError(errno.EIO, "Input/output error")


def _interrupt_fsync(fd):
    raise KeyboardInterrupt


@pytest.mark.parametrize(
    "where, patch, raised",
    [
        ("os.replace", _fail_replace, FFPError),
        ("os.fsync", _fail_fsync, FFPError),
        ("os.fsync", _interrupt_fsync, KeyboardInterrupt),
    ],
    ids=["replace-fails", "write-fails", "interrupted-mid-write"],
)
def test_crash_mid_save_keeps_previous_checkpoint_and_no_temp_file(tmp_path, monkeypatch, where, patch, raised):
    """save_checkpoint writes a temp file in the same folder, fsyncs, then os.replace: a failure or an interrupt
    at any point leaves the previous checkpoint intact and no temp file behind; an OSError names the file."""
    path = tmp_path / LATEST
    save_checkpoint(path, _state(1.0))
    monkeypatch.setattr(os, where.split(".")[1], patch)
    with pytest.raises(raised) as info:
        save_checkpoint(path, _state(2.0))
    monkeypatch.undo()
    if raised is FFPError:
        assert str(path) in str(info.value) and "previous file" in str(info.value)
    assert files_in(tmp_path) == [LATEST]
    assert read_state(path)["step"] == 1 and torch.equal(read_state(path)["net_g"]["w"], torch.ones(3))


def test_save_refuses_non_finite_weights(tmp_path):
    """A diverged state (NaN weights) never replaces the last good checkpoint, whatever path led to the save."""
    path = tmp_path / LATEST
    save_checkpoint(path, _state(1.0))
    bad = _state(3.0)
    bad["net_g"]["w"][1] = float("nan")
    with pytest.raises(FFPError, match=r"non-finite weights \(net_g\.w\) at step 3"):
        save_checkpoint(path, bad)
    assert read_state(path)["step"] == 1 and files_in(tmp_path) == [LATEST]


def test_a_checkpoint_with_one_flipped_bit_is_refused(data_root, tmp_path):
    import zipfile

    assert train_cli(tiny_args(data_root, tmp_path, 2)) == 0
    ckpt = tmp_path / "w" / LATEST
    with zipfile.ZipFile(ckpt) as archive:
        member = max(archive.infolist(), key=lambda info: info.file_size)  # the largest weight tensor
    data = bytearray(ckpt.read_bytes())
    data[member.header_offset + 30 + len(member.filename) + len(member.extra) + member.file_size // 2] ^= 0x04
    damaged = tmp_path / "damaged.pth"
    damaged.write_bytes(bytes(data))
    with pytest.raises(FFPError, match=r"damaged\.pth is truncated, damaged or not a checkpoint .*fails the CRC-32"):
        load_checkpoint(damaged)
