"""train.py end to end: on tiny synthetic data train -> checkpoint -> resume -> eval, and exact resume; training
without usable labels; progress lines when output goes to a file."""

import json
import subprocess
import sys

import fake_layouts as fl
import numpy as np
import pytest
import torch
from helpers import ROOT, tiny_args, train_cli

import eval as eval_script
import train as train_script


def train_args(root, out, iters, extra=()):
    return [
        "--dataset",
        "synthetic",
        "--preset",
        "tiny",
        "--data_root",
        str(root),
        "--flownet",
        "classical",
        "--weights_dir",
        str(out / "w"),
        "--log_dir",
        str(out / "runs"),
        "--iters",
        str(iters),
        "--save_interval",
        "3",
        "--val_interval",
        "100",
        "--threads",
        "1",  # fixed, not auto: runs compared bit for bit must use the same count (auto follows the machine's load)
        "--channels_last",
        "on",  # fixed, not auto: auto times both memory formats at the start, and the format changes the last bits
        *extra,
    ]


def weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_train_resume_is_exact(synthetic_root, tmp_path):
    """A run stopped at step 3 and resumed to 6 equals a straight 6-step run bit for bit (threads and memory format
    pinned by train_args: auto would choose them per run)."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert train_script.main(train_args(synthetic_root, straight, 6)) == 0
    assert train_script.main(train_args(synthetic_root, split, 3)) == 0
    assert (
        train_script.main(train_args(synthetic_root, split, 6, ["--resume", str(split / "w" / "synthetic_latest.pth")]))
        == 0
    )
    a, b = weights(straight / "w" / "synthetic_latest.pth"), weights(split / "w" / "synthetic_latest.pth")
    assert a["step"] == b["step"] == 6
    for name in ("net_g", "net_d"):
        for k in a[name]:
            assert torch.equal(a[name][k], b[name][k]), f"{name}.{k} differs after resume"
    assert a["sched_g"]["last_epoch"] == b["sched_g"]["last_epoch"]
    assert a["optim_g"]["param_groups"][0]["lr"] == b["optim_g"]["param_groups"][0]["lr"]


@pytest.mark.slow
def test_end_to_end_train_then_eval(synthetic_root, tmp_path, capsys):
    assert train_script.main(train_args(synthetic_root, tmp_path, 4, ["--val_interval", "4"])) == 0
    ckpt = tmp_path / "w" / "synthetic_latest.pth"
    state = weights(ckpt)
    assert state["config"]["dataset"] == "synthetic" and state["step"] == 4
    assert state["flownet"]["name"] != "none"
    assert (tmp_path / "runs" / "synthetic" / "config.json").is_file()
    assert (tmp_path / "w" / "synthetic_best.pth").is_file()
    rc = eval_script.main(
        ["--trained_model", str(ckpt), "--data_root", str(synthetic_root), "--out_dir", str(tmp_path / "results")]
    )
    assert rc == 0
    metrics = json.loads((tmp_path / "results" / "synthetic_synthetic_latest" / "metrics.json").read_text())
    assert 0 <= metrics["micro_auc"] <= 1
    out = capsys.readouterr().out
    assert "micro-AUC" in out
    # A second evaluation never overwrites the first.
    assert (
        eval_script.main(
            ["--trained_model", str(ckpt), "--data_root", str(synthetic_root), "--out_dir", str(tmp_path / "results")]
        )
        == 0
    )
    assert (tmp_path / "results" / "synthetic_synthetic_latest_2" / "metrics.json").is_file()


@pytest.mark.parametrize("how", ["one_class", "missing"])
def test_training_without_usable_labels_runs_without_validation(tmp_path, capsys, how):
    """All-normal test labels (own data with no anomaly yet) or no labels: one warning at start, training runs
    through its validation steps, 'latest' is written, 'best' is not, and the end says so."""
    info = fl.write_ped2_layout(tmp_path / "data", n_test=2, n_frames=8)
    if how == "one_class":
        fl.set_gt(info, [np.zeros((2, 0)), np.zeros((2, 0))])
    else:
        (info["dataset_dir"] / "ped2.mat").unlink()
    assert train_cli(tiny_args(tmp_path / "data", tmp_path, 4, val_interval=2)) == 0
    out = capsys.readouterr().out
    assert out.count("warning: validation AUC skipped") == 1 and "validation micro-AUC" not in out
    assert ("labelled normal" if how == "one_class" else "no frame labels") in out
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["ped2_latest.pth"]
    assert "no validation ran, so no 'best' checkpoint" in out and "-1.0000" not in out


def test_redirected_training_prints_progress_lines(tmp_path):
    """`train.py … > log 2>&1`: no terminal, so plain progress lines (step, rate, ETA, losses) appear."""
    fl.write_ped2_layout(tmp_path / "data")
    with open(tmp_path / "log", "w") as log:
        proc = subprocess.run(
            [
                sys.executable,
                "train.py",
                *tiny_args(tmp_path / "data", tmp_path, 6, "--log_interval", "2", val_interval=100, cache=True),
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=300,
        )
    text = (tmp_path / "log").read_text()
    assert proc.returncode == 0, text[-2000:]
    lines = [line for line in text.splitlines() if line.startswith("train: ")]
    assert lines and lines[-1].startswith("train: 6/6 (100%)") and "step/s" in lines[-1] and "psnr" in lines[-1]
    assert "\r" not in text


def test_validation_auc_below_one_half_says_once_that_labels_may_be_inverted(tmp_path, capsys, monkeypatch):
    """Validation AUCs of 0.30 then 0.20 (what labels stored as 1 = normal give a model that works; here the AUC
    values are set, the scoring itself is tested with eval.py): one note naming the label file and 'best'."""
    info = fl.write_ped2_layout(tmp_path / "data", n_test=2, n_frames=8)
    aucs = iter([0.3, 0.2])
    monkeypatch.setattr(train_script, "validate_auc", lambda *args: next(aucs))
    assert train_cli(tiny_args(tmp_path / "data", tmp_path, 4, val_interval=2)) == 0
    out = capsys.readouterr().out
    assert "validation micro-AUC 0.3000" in out and "validation micro-AUC 0.2000" in out
    source = info["dataset_dir"] / "ped2.mat"
    note = f"note: validation micro-AUC 0.3000 is below 0.5 (worse than chance): the labels ({source})"
    assert out.count(note) == 1 and out.count("may be inverted") == 1
    assert "1 = normal instead of 1 = abnormal" in out and "'best' keeps the highest AUC" in out
