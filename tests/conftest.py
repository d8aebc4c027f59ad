"""Shared fixtures: the real data folder (skip when absent), small generated datasets, background training runs,
a tiny full disk, a written report. Helper functions are in helpers.py, fake dataset writers in fake_layouts.py."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

# cuBLAS is deterministic only with a fixed workspace, set before its first call (CUDA runs of `device` tests).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

from helpers import DEVICES  # noqa: E402

torch.set_num_threads(2)


# ----------------------------------------------------------------------------- the devices tests run on
@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    """Each device a test runs on: the CPU always, CUDA where present (skipped with the reason otherwise).

    When this fixture is CUDA the test runs with deterministic kernels and without TF32 (restored after), so that
    comparisons which are exact on the CPU (the same computation twice, a resumed run against an uninterrupted one)
    stay exact and fp32 tolerances mean fp32. `pytest -m cuda` selects the CUDA runs (bench/gpu_check.py), also
    those of tests parametrised over a second device (helpers.DEVICES); `-m cpu` the CPU ones.
    """
    device = torch.device(request.param)
    if device.type != "cuda":
        yield device
        return
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cuda.matmul.allow_tf32,
    )
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield device
    finally:
        torch.use_deterministic_algorithms(saved[0])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[1], saved[2]
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved[3], saved[4]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data with the real Ped2 and label files; skip with a reason when it is absent."""
    if not (SHARED_DATA / "ped2").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (the project's machines and CI have it)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """A data_root holding the default synthetic dataset, generated once per test session."""
    from synthetic import ensure_synthetic

    root = tmp_path_factory.mktemp("data")
    ensure_synthetic(root, seed=0)
    return root


# ----------------------------------------------------------------------------- a small written report


@pytest.fixture()
def written_report(tmp_path):
    """An evaluation report of fake_dataset (with a heatmap video of Test001) in tmp_path/report."""
    from helpers import META, fake_dataset, write_heatmap

    from evaluation.metrics import compute_metrics
    from evaluation.report import EvalResults, ReportPage, write_report

    psnr, labels = fake_dataset()
    metrics = compute_metrics(psnr, labels, smooth_sigma=1.0)
    metrics["pixel_auroc"] = np.float64(0.8)
    out = tmp_path / "report"
    write_heatmap(out / "videos" / "Test001.mp4", labels=labels["Test001"][:7])
    index = write_report(out, EvalResults(psnr, labels, metrics), ReportPage(META, {"Test001": "videos/Test001.mp4"}))
    return out, index, psnr, metrics


# ----------------------------------------------------------------------------- fake data and runs


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """A data root holding a tiny ped2-layout dataset: 17 training windows, 2 labelled test videos."""
    from fake_layouts import write_ped2_layout

    root = tmp_path_factory.mktemp("data")
    write_ped2_layout(root, n_train=2, n_test=2, n_frames=12)
    return root


@pytest.fixture(scope="module")
def clean_mp4(tmp_path_factory) -> tuple[Path, list[np.ndarray]]:
    """A 120-frame mp4 (10 fps) whose frame j has mean grey level frame_mean(j)."""
    import fake_layouts as fl
    from helpers import real_frames

    frames = fl.video_frames(120, real=real_frames())
    return fl.write_video(tmp_path_factory.mktemp("mp4") / "clip.mp4", frames), frames


@pytest.fixture
def train_process():
    """start(*args) runs `python train.py args…` in the background (helpers.popen_train); whatever is still
    running when the test ends, passed or failed, is killed, so no run outlives its test."""
    from helpers import popen_train

    started = []

    def start(*args: str):
        started.append(popen_train(*args))
        return started[-1]

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


@pytest.fixture
def tiny_disk(tmp_path) -> Path:
    """A 1 MiB tmpfs (needs root and mount permission; skipped with the reason otherwise), unmounted after."""
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up here ({result.stderr.strip() or 'mount failed'})")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)
