"""The shipped weights/ped2_cpu.pth: loadable, small, honest metadata, and its Ped2 scores unchanged.

The reference PSNRs in tests/data/ped2_cpu_reference.json were recorded from the shipped file when it was
made; any later change to the data pipeline, the generator or the scoring that moves them fails here.
Re-record (only when the checkpoint itself is replaced) with:

    python tests/test_checkpoint_shipped.py --record
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

from checkpoint import checkpoint_config, load_checkpoint  # noqa: E402
from config import PRESETS, Config  # noqa: E402
from dataset import find_dataset  # noqa: E402
from inference.predict import generator_from_state, score_videos  # noqa: E402

SHIPPED = ROOT / "weights" / "ped2_cpu.pth"
REFERENCE = ROOT / "tests" / "data" / "ped2_cpu_reference.json"
SHARED_DATA = ROOT.parent / "shared" / "data"
VIDEOS = ("01", "04")  # both normal at first, abnormal from frame 61 (01) and 31 (04) on
N_FRAMES = 80  # frames read per video (76 scored): enough to cover normal and abnormal frames
TOLERANCE_DB = 0.02  # float differences between CPUs/thread counts stay far below this


def shipped_psnr(data_root: Path) -> dict[str, list[float]]:
    """PSNR (dB) of the first N_FRAMES − in_frames predicted frames of each reference video, shipped weights."""
    state = load_checkpoint(SHIPPED)
    cfg = Config.from_dict(state["config"])
    generator = generator_from_state(state, cfg, torch.device("cpu"), str(SHIPPED))
    clips = [v.head(N_FRAMES) for v in find_dataset(data_root, "ped2").test if v.name in VIDEOS]
    psnr, _ = score_videos(generator, clips, cfg, torch.device("cpu"))
    return {name: [round(float(x), 4) for x in values] for name, values in psnr.items()}


@pytest.fixture(scope="module")
def shipped_state() -> dict:
    if not SHIPPED.is_file():
        pytest.fail(f"{SHIPPED} is missing: it is tracked by git and must ship with the project")
    return load_checkpoint(SHIPPED)


def test_shipped_file_is_small_generator_only_and_honest(shipped_state):
    assert SHIPPED.stat().st_size <= 20 * 2**20
    assert "net_d" not in shipped_state and "optim_g" not in shipped_state
    assert shipped_state["selected_with_test_labels"] is False  # the last checkpoint, not picked on test labels
    stats = shipped_state["psnr_stats"]  # streaming detection works out of the box
    assert np.isfinite(stats["mean"]) and stats["std"] > 0
    cfg = Config.from_dict(shipped_state["config"])
    assert cfg.dataset == "ped2" and cfg.preset == "cpu"
    # Written in checkpoint format 1, before the flow-loss units were fixed: stored λ_op 2, classical flow, no
    # loss_units, read as --preset cpu's λ_op 0.005 in pixel units (docs/method.md "Units of the motion loss").
    raw = torch.load(SHIPPED, map_location="cpu", weights_only=True)
    assert "format_version" not in raw and raw["config"]["lambda_op"] == 2.0 and "loss_units" not in raw["flownet"]
    assert shipped_state["flownet"] == {**raw["flownet"], "loss_units": "pixels"}
    assert raw["flownet"]["name"] == "ClassicalFlow"
    trained = checkpoint_config(shipped_state)
    for key, value in PRESETS["cpu"].items():  # it was trained with the preset as documented
        assert getattr(trained, key) == value, key
    assert shipped_state["step"] == cfg.iters  # the end of the run


@pytest.mark.slow
def test_shipped_scores_match_the_recorded_reference(shared_data):
    reference = json.loads(REFERENCE.read_text())
    got = shipped_psnr(shared_data)
    for name in VIDEOS:
        want = np.asarray(reference["psnr"][name])
        assert len(got[name]) == len(want) == N_FRAMES - 4
        np.testing.assert_allclose(got[name], want, atol=TOLERANCE_DB, err_msg=f"Ped2 test video {name}")


def test_detect_runs_out_of_the_box_and_scores_the_cyclist_higher(shared_data, tmp_path):
    """detect.py --mode stream with the shipped weights on a frame folder cut from Ped2 Test001 (frames 31-110;
    a cyclist enters at frame 61): the training statistics in the file make the z-scores meaningful."""
    from helpers import read_scores, run_detect

    video = find_dataset(shared_data, "ped2").test[0]
    clip = tmp_path / "clip"
    clip.mkdir()
    for i, frame in enumerate(video.source.files[30:110]):
        shutil.copy(frame, clip / f"{i:03d}.jpg")
    rows = read_scores(run_detect(clip, SHIPPED, tmp_path / "out", "--mode", "stream"))
    scores, labels = np.array([float(r["score"]) for r in rows]), video.labels[34:110]
    assert len(rows) == 76 and labels.min() == 0 and labels.max() == 1
    assert scores[labels == 1].mean() > scores[labels == 0].mean()


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        raise SystemExit("usage: python tests/test_checkpoint_shipped.py --record")
    REFERENCE.parent.mkdir(exist_ok=True)
    record = {"checkpoint": SHIPPED.name, "videos": VIDEOS, "n_frames": N_FRAMES, "psnr": shipped_psnr(SHARED_DATA)}
    REFERENCE.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {REFERENCE}")
