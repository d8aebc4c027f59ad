"""export.py: a training checkpoint becomes a generator-only file that eval/detect load; bad cases are one line."""

from __future__ import annotations

import pytest
import torch
from helpers import TINY, save_random_checkpoint

import export
from checkpoint import load_checkpoint
from cli import run_cli
from model import Discriminator


def training_checkpoint(path, **extra):
    """A tiny checkpoint shaped like train.py's (G, D, an optimizer state, history), plus `extra` keys."""
    d = Discriminator(TINY.d_widths)
    opt = torch.optim.Adam(d.parameters())
    return save_random_checkpoint(
        path,
        net_d=d.state_dict(),
        optim_d=opt.state_dict(),
        history=[{"step": 0}],
        selected_with_test_labels=False,
        train_seconds=12.5,
        **extra,
    )


def test_export_keeps_what_eval_and_detect_need(tmp_path):
    source = training_checkpoint(tmp_path / "run.pth", psnr_stats={"mean": 30.0, "std": 2.0, "n": 8})
    assert export.main([str(source), str(tmp_path / "out.pth")]) == 0
    shipped, full = load_checkpoint(tmp_path / "out.pth"), load_checkpoint(source)
    assert set(shipped) == {
        "format_version",
        "fps",
        "net_g",
        "config",
        "step",
        "psnr_stats",
        "history",
        "selected_with_test_labels",
        "train_seconds",
    }
    assert all(torch.equal(shipped["net_g"][k], full["net_g"][k]) for k in full["net_g"])
    assert (tmp_path / "out.pth").stat().st_size < source.stat().st_size


def test_export_refuses_a_checkpoint_without_stats_and_without_its_data(tmp_path, capsys):
    """A run stopped before its end has no streaming statistics; without its training data they cannot be made."""
    source = training_checkpoint(tmp_path / "run.pth")
    argv = [str(source), str(tmp_path / "out.pth"), "--data_root", str(tmp_path / "moved")]
    assert run_cli(export.main, argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "has no training PSNR statistics" in err and "--data_root" in err
    assert not (tmp_path / "out.pth").exists()


def test_export_computes_missing_stats_from_the_training_data(synthetic_root, tmp_path, capsys):
    """...and with the data (here the synthetic set the checkpoint names) export computes them and says so."""
    source = training_checkpoint(tmp_path / "run.pth")
    assert export.main([str(source), str(tmp_path / "out.pth"), "--data_root", str(synthetic_root)]) == 0
    stats = load_checkpoint(tmp_path / "out.pth")["psnr_stats"]
    assert stats["n"] == 500 and stats["std"] > 0 and 5 < stats["mean"] < 60
    assert "computed the training PSNR statistics (500 windows" in capsys.readouterr().out


@pytest.mark.parametrize("flag", [[], ["--overwrite"]])
def test_an_existing_output_is_kept_unless_overwrite(tmp_path, capsys, flag):
    source = training_checkpoint(tmp_path / "run.pth", psnr_stats={"mean": 30.0, "std": 2.0, "n": 8})
    (tmp_path / "out.pth").write_bytes(b"old")
    assert run_cli(export.main, [str(source), str(tmp_path / "out.pth"), *flag]) == (0 if flag else 1)
    assert ((tmp_path / "out.pth").read_bytes() == b"old") != bool(flag)
    assert flag or "--overwrite" in capsys.readouterr().err
