"""What each script's flags say and where their values come from: --help text, answering before torch loads,
and runtime settings taken from the command, never from the checkpoint's training machine."""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import torch

import eval as eval_script
from checkpoint import save_checkpoint
from config import FIELDS, FLAG_GROUPS, GROUPS, RUNTIME_FIELDS, Config, build_config, dataset_defaults
from config_flags import command_config
from errors import FFPError
from model import Generator
from training.resume import resume_config

ROOT = Path(__file__).resolve().parents[1]
# A command line with one bad flag value per script, and the word its one error line must name.
BAD_FLAG = {
    "train.py": (["--iters", "x"], "--iters"),
    "eval.py": (["--trained_model", "m.pth", "--threads", "x"], "--threads"),
    "detect.py": (["--video", "v.mp4", "--trained_model", "m.pth", "--mode", "live"], "--mode"),
    "export.py": (["only_one.pth"], "output"),
}


def help_text(script: str) -> str:
    out = subprocess.run([sys.executable, script, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def flag_help(text: str, flag: str) -> str:
    """The help entry of one flag in --help output (its lines joined on single spaces)."""
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.lstrip().startswith(f"{flag} ") or line.strip() == flag)
    entry = [lines[first]]
    for line in lines[first + 1 :]:
        if not line.startswith("    ") or line.lstrip().startswith("-"):
            break
        entry.append(line)
    return " ".join(" ".join(entry).split())


def test_every_setting_has_one_sentence_and_one_group():
    names = [f.name for f in fields(Config)]
    assert all(FIELDS[n].metadata["help"].strip() and FIELDS[n].metadata["group"] in GROUPS for n in names)
    grouped = [n for group in FLAG_GROUPS.values() for n in group]
    assert grouped == names, "each Config field in exactly one flag group; fields in --help's order"
    assert set(RUNTIME_FIELDS) <= set(names)


def test_train_help_gives_the_defaults_that_apply():
    text = help_text("train.py")
    height = flag_help(text, "--height")
    assert "64 (synthetic)" in height and "256 (ped2" in height and "tiny: 32" in height
    iters = flag_help(text, "--iters")
    assert f"{dataset_defaults('synthetic')['iters']} (synthetic)" in iters and "80000 (ped2" in iters
    assert "(default: 256)" not in height and "80000)" not in iters.split("(synthetic)")[0]
    assert "{auto,flownet2sd,rife,classical,none}" in text
    for group in ("data", "model", "optimisation", "losses", "outputs", "speed", "machine"):
        assert f"{group} settings:" in text


def test_eval_and_detect_show_only_the_flags_they_use():
    for script in ("eval.py", "detect.py"):
        text = help_text(script)
        for training_only in ("--lr_g", "--lambda_op", "--save_interval", "--iters", "--height", "--g_widths"):
            assert f"{training_only} " not in text, (script, training_only)
        for machine in ("--device", "--threads", "--num_workers", "--eval_batch_size"):
            assert machine in text, (script, machine)
    assert "the checkpoint's" in flag_help(help_text("eval.py"), "--dataset")
    assert "--batch_size" in help_text("detect.py")  # the older spelling of --eval_batch_size still works


@pytest.mark.parametrize("script", sorted(BAD_FLAG))
def test_help_and_flag_errors_answer_without_torch(script):
    """Run the script with torch made unimportable: --help and a bad flag must answer all the same."""
    blocked = (
        "import runpy, sys; sys.modules['torch'] = None; sys.modules['numpy'] = None; "
        f"sys.argv = [{script!r}] + sys.argv[1:]; runpy.run_path({script!r}, run_name='__main__')"
    )
    ok = subprocess.run([sys.executable, "-c", blocked, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "usage:" in ok.stdout, ok.stderr
    argv, named = BAD_FLAG[script]
    bad = subprocess.run([sys.executable, "-c", blocked, *argv], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1, bad.stderr
    assert bad.stderr.startswith("error: ") and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert named in bad.stderr


# A value of the right type but out of range: refused before torch loads too, naming the flag typed.
DETECT = ["--video", "v.mp4", "--trained_model", "m.pth"]
BAD_VALUE = [
    ("train.py", ["--iters", "0"], "--iters"),
    ("eval.py", ["--trained_model", "m.pth", "--threads", "-1"], "--threads"),
    ("detect.py", [*DETECT, "--batch_size", "0"], "--batch_size"),
    ("detect.py", [*DETECT, "--mode", "stream", "--psnr_mean", "30"], "--psnr_std"),
    ("detect.py", [*DETECT, "--psnr_mean", "30", "--psnr_std", "2"], "add --mode stream"),
]


@pytest.mark.parametrize("script, argv, named", BAD_VALUE)
def test_out_of_range_values_answer_without_torch(script, argv, named):
    blocked = (
        "import runpy, sys; sys.modules['torch'] = None; sys.modules['numpy'] = None; "
        f"sys.argv = [{script!r}] + sys.argv[1:]; runpy.run_path({script!r}, run_name='__main__')"
    )
    bad = subprocess.run([sys.executable, "-c", blocked, *argv], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and bad.stderr.startswith("error: ") and named in bad.stderr, bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr


def training_machine_config() -> Config:
    """A tiny config as a GPU box with its own data folder and worker count would store it."""
    return build_config(
        "synthetic",
        "tiny",
        {
            "g_widths": (4, 8),
            "device": "cuda:0",
            "num_workers": 2,
            "threads": 8,
            "data_root": "/mnt/gpu_box/data",
            "eval_batch_size": 256,
            "cache_dir": "/mnt/gpu_box/cache",
        },
    )


def test_command_config_keeps_the_model_and_takes_this_machines_settings():
    trained = training_machine_config()
    cfg = command_config(trained, argparse.Namespace(dataset=None, threads=1))
    for name in ("height", "width", "in_frames", "g_widths", "d_widths", "flownet", "dataset"):
        assert getattr(cfg, name) == getattr(trained, name)
    assert (cfg.device, cfg.num_workers, cfg.data_root, cfg.cache_dir) == ("auto", -1, "data", "cache")
    assert cfg.threads == 1  # the flag given
    assert cfg.eval_batch_size == dataset_defaults("synthetic")["eval_batch_size"]  # the dataset's default
    other = command_config(trained, argparse.Namespace(dataset="ped2", eval_batch_size=None))
    assert other.dataset == "ped2" and other.eval_batch_size == Config.eval_batch_size


def test_resume_keeps_the_run_but_not_the_training_machine():
    trained = training_machine_config()
    state = {"config": trained.to_dict()}
    args = argparse.Namespace(**{f.name: None for f in fields(Config)})
    cfg, changes = resume_config(args, state, "x.pth")
    assert (cfg.device, cfg.threads) == ("auto", 0)
    assert cfg.data_root == trained.data_root and cfg.iters == trained.iters  # same run, same data
    assert cfg.num_workers == 0  # the run's --preset tiny says 0 workers; the checkpoint's 2 are not used
    said = "\n".join(changes)
    for name, old, new in (
        ("device", "cuda:0", "auto"),
        ("threads", "8", "0"),
        ("num_workers", "2", "0"),
        ("cache_dir", "/mnt/gpu_box/cache", "cache"),
    ):
        assert f"{name}: {old} -> {new} (this machine's default, not the checkpoint's)" in said, said
    assert "data_root" not in said and "iters" not in said


def test_eval_of_a_gpu_trained_checkpoint_runs_here_with_its_own_defaults(
    synthetic_root, tmp_path, capsys, monkeypatch
):
    """A checkpoint written on a CUDA machine (device cuda:0, 2 workers, its data folder) evaluates on this CPU
    machine without flags naming them; the workers used are this command's (auto), and --dataset is noted."""
    trained = training_machine_config()
    torch.manual_seed(0)
    g = Generator(trained.in_frames, trained.g_widths)
    ckpt = tmp_path / "gpu.pth"
    save_checkpoint(ckpt, {"net_g": g.state_dict(), "config": trained.to_dict(), "step": 0})
    seen = {}
    real = eval_script.prepare_dataset

    def spy(cfg, **kwargs):
        seen["cfg"] = cfg
        return real(cfg, **kwargs)

    monkeypatch.setattr(eval_script, "prepare_dataset", spy)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a CPU-only machine
    assert (
        eval_script.main(
            ["--trained_model", str(ckpt), "--data_root", str(synthetic_root), "--out_dir", str(tmp_path / "r")]
        )
        == 0
    )
    cfg = seen["cfg"]
    assert cfg.device == "cpu" and cfg.num_workers == -1 and cfg.data_root == str(synthetic_root)
    assert "note: evaluating on dataset" not in capsys.readouterr().out
    with pytest.raises(FFPError):  # no ped2 in that folder; the note comes first
        eval_script.main(
            [
                "--trained_model",
                str(ckpt),
                "--dataset",
                "ped2",
                "--data_root",
                str(tmp_path / "nothing"),
                "--out_dir",
                str(tmp_path / "r2"),
            ]
        )
    assert "note: evaluating on dataset ped2 a model trained on synthetic" in capsys.readouterr().out


def test_custom_defaults_are_the_cpu_preset():
    """A dataset that is not a built-in benchmark (your own camera) gets the cpu preset's settings."""
    from config import PRESETS

    cfg = build_config("mycam")
    assert all(getattr(cfg, k) == v for k, v in PRESETS["cpu"].items())
