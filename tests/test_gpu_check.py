"""bench/gpu_check.py's own behaviour without a GPU (its --smoke run is in .ci/run): one line and exit 1 without
CUDA, one line for a bad flag, and a summary that a cut-off run leaves readable."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from helpers import ROOT


def gpu_check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "bench/gpu_check.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the check would run")
def test_without_cuda_it_says_so_in_one_line(tmp_path):
    done = gpu_check("--out", str(tmp_path / "out"))
    assert done.returncode == 1
    assert done.stdout.strip().splitlines() == [
        "gpu_check: no CUDA device here (torch.cuda.is_available() is False); --smoke runs the same steps tiny on "
        "the CPU"
    ]
    assert not (tmp_path / "out").exists()


def test_an_unknown_step_is_one_error_line(tmp_path):
    done = gpu_check("--smoke", "--steps", "tests,train", "--out", str(tmp_path))
    assert done.returncode == 2 and "--steps takes tests,ddp,bench,paper" in done.stderr.strip().splitlines()[-1]


def test_the_summary_is_written_after_each_step(tmp_path, monkeypatch):
    """A step's result is in summary.json and summary.md as soon as it is set (a run cut off keeps them)."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))  # the benchmarks import their `common` module
    import gpu_check as check

    summary = check.Summary(tmp_path, check.machine_info(torch.device("cpu")), 60.0)
    summary.set(
        "bench",
        {
            "status": "running",
            "cases": [
                {"kind": "train", "mode": "fp32", "flow": "classical", "status": "measured", "train_steps_per_s": 1.5}
            ],
        },
    )
    assert json.loads((tmp_path / "summary.json").read_text())["steps"]["bench"]["cases"][0]["train_steps_per_s"] == 1.5
    assert "| train | fp32 | classical | 1.5 |" in (tmp_path / "summary.md").read_text()
    summary.set("paper", {"status": "running", "trajectory": [{"step": 1000, "micro_auc": 0.91234}]})
    assert "| 1000 | 0.9123 |" in (tmp_path / "summary.md").read_text()
