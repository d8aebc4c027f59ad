"""Shared fixtures: the real data folder (skip when absent) and one small synthetic dataset per session."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED_DATA = ROOT.parent / "shared" / "data"

torch.set_num_threads(2)


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

META = {"checkpoint": "weights/ped2_latest.pth", "step": np.int64(1200), "dropped_frames": 4,
        "selected_with_test_labels": False, "config": {"lr": np.float32(2e-4), "size": (64, 64)}}


def fake_dataset():
    """Two videos: 'Test001' (30 frames, abnormal 12..20) and 'Test 002' (25 frames, all normal)."""
    rng = np.random.default_rng(0)
    lab1 = np.zeros(30, int)
    lab1[12:21] = 1
    psnr1 = 32 - 5 * lab1 + rng.normal(0, 0.7, 30)
    psnr2 = 33 + rng.normal(0, 0.7, 25)
    return {"Test001": psnr1, "Test 002": psnr2}, {"Test001": lab1, "Test 002": np.zeros(25, int)}




@pytest.fixture()
def written_report(tmp_path):
    """An evaluation report of fake_dataset (with a heatmap video of Test001) in tmp_path/report."""
    from evaluation.metrics import compute_metrics
    from evaluation.report import write_report
    from helpers import write_heatmap
    psnr, labels = fake_dataset()
    metrics = compute_metrics(psnr, labels, smooth_sigma=1.0)
    metrics["pixel_auroc"] = np.float64(0.8)
    out = tmp_path / "report"
    write_heatmap(out / "videos" / "Test001.mp4", labels=labels["Test001"][:7])
    index = write_report(out, psnr, labels, metrics, META, videos={"Test001": "videos/Test001.mp4"})
    return out, index, psnr, metrics
