"""Shared fixtures: the real data folder (skip when absent) and one small synthetic dataset per session."""
from __future__ import annotations

import sys
from pathlib import Path

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
