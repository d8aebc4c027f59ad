"""checkpoint/files.py's file I/O: an atomic save that a crash, a full disk or Ctrl-C cannot half-write, no non-finite
weights written, a damaged file (one flipped bit) refused on load; weights saved from inside DDP or torch.compile
wrappers read by every command; a refusal of pickled objects that a command-line user can act on."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch
from helpers import LATEST, eval_cli, files_in, read_state, run_detect, tiny_args, train_cli

import export
from checkpoint import load_checkpoint, save_checkpoint
from errors import FFPError


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


# ----------------------------------------------------------------------------------------------- other code's files
@pytest.fixture(scope="module")
def trained(data_root, tmp_path_factory) -> tuple[Path, Path]:
    """(the tiny ped2 data root, a 2-step tiny training run's folder: w/ped2_latest.pth has G, D, optimizers)."""
    out = tmp_path_factory.mktemp("run")
    assert train_cli(tiny_args(data_root, out, 2, "--threads", "1")) == 0
    return data_root, out


def _wrapped(state: dict, prefix_g: str, prefix_d: str) -> dict:
    """`state` with its weights renamed as a wrapped module saves them (e.g. 'module.' + name)."""
    return {
        **state,
        "net_g": {prefix_g + k: v for k, v in state["net_g"].items()},
        "net_d": {prefix_d + k: v for k, v in state["net_d"].items()},
    }


@pytest.mark.parametrize(
    "prefix_g, prefix_d",
    [("module.", "module."), ("_orig_mod.", ""), ("_orig_mod.module.", "module._orig_mod.")],
    ids=["ddp", "compile", "both"],
)
def test_wrapper_prefixes_are_stripped_with_one_note(trained, tmp_path, capsys, prefix_g, prefix_d):
    _, run = trained
    plain = read_state(run / "w" / LATEST)
    path = tmp_path / "wrapped.pth"
    save_checkpoint(path, _wrapped(plain, prefix_g, prefix_d))
    capsys.readouterr()
    state = load_checkpoint(path)
    for net in ("net_g", "net_d"):
        assert list(state[net]) == list(plain[net])
        assert all(torch.equal(state[net][k], plain[net][k]) for k in plain[net])
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith(f"note: checkpoint {path}: weight names carry the prefix")
    for prefix in {prefix_g, prefix_d} - {""}:
        assert repr(prefix) in out
    assert ("DataParallel/DDP" in out) == ("module." in prefix_g + prefix_d)
    assert ("torch.compile" in out) == ("_orig_mod." in prefix_g + prefix_d)
    load_checkpoint(run / "w" / LATEST)
    assert capsys.readouterr().out == ""  # plain names: no note


def test_prefixes_whose_removal_would_merge_weights_are_left_to_the_strict_loader(trained, tmp_path, capsys):
    """'module.w' and 'w' in one state dict would become one name: nothing is renamed, the architecture check names
    the keys."""
    _, run = trained
    plain = read_state(run / "w" / LATEST)
    first = next(iter(plain["net_g"]))
    plain["net_g"]["module." + first] = plain["net_g"][first]
    path = tmp_path / "clash.pth"
    save_checkpoint(path, plain)
    state = load_checkpoint(path)
    assert "module." + first in state["net_g"] and "prefix" not in capsys.readouterr().out


def test_a_refused_pickle_names_the_file_and_the_types_not_torch_internals(trained, tmp_path):
    import numpy as np

    _, run = trained
    state = read_state(run / "w" / LATEST)
    state["psnr_stats"] = {"mean": np.float64(30.0)}  # a NumPy scalar: someone's own code saved this
    path = tmp_path / "numpy.pth"
    torch.save(state, path)
    with pytest.raises(FFPError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and "refused by safe loading" in message
    assert "multiarray.scalar" in message and "re-save it in Python" in message
    assert "add_safe_globals" not in message and "safe_globals" not in message


def _load_with(cli: str, wrapped: Path, root: Path, out: Path) -> None:
    """Run `cli` on the wrapped checkpoint (exit status 0 asserted)."""
    if cli == "eval":
        assert eval_cli(wrapped, root, out, "--threads", "1") == 0
    elif cli == "detect":
        run_detect(root / "ped2" / "testing" / "frames" / "01", wrapped, out, "--threads", "1")
    elif cli == "export":
        assert export.main([str(wrapped), str(out / "shipped.pth"), "--threads", "1"]) == 0
    else:  # train.py --resume / --init_from
        assert train_cli(tiny_args(root, out, 3, f"--{cli.split('_', 1)[1]}", str(wrapped), "--threads", "1")) == 0


@pytest.mark.parametrize("cli", ["eval", "detect", "export", "train_resume", "train_init_from"])
def test_every_command_loads_wrapped_weights_and_says_so_once(trained, tmp_path, capsys, cli):
    root, run = trained
    wrapped = tmp_path / "wrapped.pth"
    save_checkpoint(wrapped, _wrapped(read_state(run / "w" / LATEST), "_orig_mod.module.", "module."))
    capsys.readouterr()
    _load_with(cli, wrapped, root, tmp_path / "out")
    out = capsys.readouterr().out
    assert out.count(f"note: checkpoint {wrapped}: weight names carry the prefix") == 1, out
    if cli == "export":  # the written file loads with the same loader, without prefixes or a note
        shipped = load_checkpoint(tmp_path / "out" / "shipped.pth")
        assert list(shipped["net_g"]) == list(read_state(run / "w" / LATEST)["net_g"])
        assert "prefix" not in capsys.readouterr().out


def test_export_never_writes_weights_that_do_not_fit(tmp_path, capsys):
    """A checkpoint whose generator does not fit its config is refused before anything is written."""
    from cli import run_cli

    source = read_state(Path(__file__).resolve().parents[1] / "weights" / "ped2_cpu.pth")
    source["net_g"].pop(next(iter(source["net_g"])))
    save_checkpoint(tmp_path / "broken.pth", source)
    assert run_cli(export.main, [str(tmp_path / "broken.pth"), str(tmp_path / "out.pth")]) == 1
    err = capsys.readouterr().err
    assert "does not fit this architecture" in err and "missing" in err and not (tmp_path / "out.pth").exists()
