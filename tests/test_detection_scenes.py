"""Scene changes (detection/scenes.py): the tracker on made-up background levels, then detect.py with the shipped
model on real Ped2 footage whose lights switch (a 3-frame white flash, then +40 grey levels) or fade at dusk, as a
file in both modes and as a live MJPEG stream served on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import ROOT, SHARED_DATA, ped2_scene, ped2_stream, read_scores, run_detect
from live_server import MjpegServer

from detection.scenes import SCENE_DB, SceneSettings, SceneTracker, background_db, scene_scores

SHIPPED = ROOT / "weights" / "ped2_cpu.pth"
SWITCH, OBJECT = 50, range(80, 100)  # where the lights switch on, and where a box crosses the lit scene
needs_ped2 = pytest.mark.skipif(
    not (SHARED_DATA / "ped2" / "training").is_dir(), reason="real Ped2 frames not found under ../shared/data"
)


# ----------------------------------------------------------------------------------------------- the tracker
def run_tracker(background, psnr, base=None, threshold=3.0, std=1.7):
    """SceneTracker at 10 fps over per-frame levels (dB); returns it and its steps' (scored, base, scene)."""
    tracker = SceneTracker(SceneSettings(10.0, 4), base, threshold * std if base is not None else np.inf)
    n = len(background)
    return tracker, tracker.steps(np.arange(n), np.arange(n) / 10.0, np.asarray(psnr), np.asarray(background))


def test_a_steady_scene_with_a_local_anomaly_has_no_change():
    rng = np.random.default_rng(0)
    background = 52 + rng.uniform(-1.5, 1.5, 300)
    psnr = 38 + rng.normal(0, 1, 300)
    psnr[100:120] = 22  # an object crossing: PSNR falls, the background error does not move
    background[100:120] -= 1
    tracker, (scored, base, scene) = run_tracker(background, psnr, base=38.2)
    assert tracker.changes == [] and scored.all() and (scene == 0).all()
    assert abs(base[-1] - 38.2) < 0.5  # the drift average left the alarm frames out


def test_a_switch_is_one_change_then_a_new_baseline():
    """Flash (5 dB), windows still spanning it (20-25 dB), then the lit scene (40 dB, PSNR 33): one change, unscored
    until 1 s of steady background, then the baseline is the lit scene's PSNR."""
    background = [52.0] * 60 + [5.0] * 3 + [25.0] * 4 + [40.0] * 60
    psnr = [38.0] * 60 + [10.0] * 7 + [33.0] * 60
    tracker, (scored, base, scene) = run_tracker(background, psnr, base=38.0)
    (change,) = tracker.changes
    assert change.first_frame == 60 and change.last_frame == 60 + 7 + 10 - 1 and change.settled
    assert change.drop_db == pytest.approx(52 - 5)
    assert scored[:60].all() and not scored[60:77].any() and scored[77:].all()
    assert base[77] == pytest.approx(33.0) and (scene[77:] == 1).all() and (scene[:60] == 0).all()


def test_a_slow_drift_is_followed_not_called_a_change():
    """PSNR falling 3 dB and the background error 10 dB over 60 s: no change; the baseline follows, so the z-score
    stays below 3 where the fixed training baseline would alarm."""
    n = 600
    background = 52 - np.linspace(0, 10, n)
    psnr = 38 - np.linspace(0, 6, n)
    tracker, (scored, base, _) = run_tracker(background, psnr, base=38.0)
    assert tracker.changes == [] and scored.all()
    z = (base - psnr) / 1.7
    assert z.max() < 3 < (38.0 - psnr[-1]) / 1.7


def test_a_change_still_settling_at_the_end_is_closed():
    tracker, _ = run_tracker([52.0] * 30 + [5.0, 30.0, 12.0], [38.0] * 33)
    assert tracker.changes == []
    change = tracker.finish()
    assert change is not None and not change.settled and tracker.changes == [change]
    assert change.as_dict()["kind"] == "scene_change" and "not settled" in change.describe()


def test_background_error_and_per_scene_scores():
    maps = np.zeros((2, 4, 4), np.float32)
    maps[0, :2] = 1e-4  # half the pixels: the median lies between the halves
    maps[1, :3] = 1e-2
    got = background_db(maps)
    assert got[0] == pytest.approx(-10 * np.log10(0.5e-4), abs=1e-4) and got[1] == pytest.approx(20.0, abs=1e-4)
    psnr, scenes = np.array([30.0, 20.0, 10.0, 5.0, 9.0, 7.0]), np.array([0, 0, 0, 1, 1, 2])
    scores, short = scene_scores(psnr, scenes, min_frames=2)
    np.testing.assert_allclose(scores, [0.0, 0.5, 1.0, 1.0, 0.0, 0.0])  # scene 2: one frame, too short
    assert short == [2]
    alone, short = scene_scores(psnr[-1:], scenes[-1:], min_frames=2)  # one scene: the paper's score, however short
    assert short == [] and alone.tolist() == [0.0]
    assert SCENE_DB > 5  # a dusk's onset (5 dB on Ped2) is no change of the whole scene


# ----------------------------------------------------------------------------------------------- detect.py
def clip(tmp_path: Path, name: str, **scene) -> Path:
    """120 frames of real Ped2 footage as a folder of lossless PNGs (10 fps)."""
    folder = tmp_path / name
    folder.mkdir()
    for k, image in enumerate(ped2_scene(120, **scene)):
        cv2.imwrite(str(folder / f"{k:03d}.png"), image)
    return folder


def detect_summary(tmp_path: Path, folder: Path, mode: str) -> tuple[dict, list[int]]:
    out = run_detect(folder, SHIPPED, tmp_path / f"det_{folder.name}_{mode}", "--mode", mode, "--threads", "2")
    return json.loads((out / "summary.json").read_text()), [int(r["frame"]) for r in read_scores(out)]


@pytest.mark.slow
@needs_ped2
@pytest.mark.parametrize("with_object", [False, True], ids=["switch", "switch+object"])
def test_stream_mode_reports_the_switch_once_and_finds_what_happens_after(tmp_path, with_object):
    summary, frames = detect_summary(
        tmp_path, clip(tmp_path, "lit", switch_at=SWITCH, abnormal=OBJECT if with_object else range(0)), "stream"
    )
    (change,) = summary["scene_changes"]
    assert change["first_frame"] == SWITCH and change["settled"] and change["last_frame"] < SWITCH + 25
    assert not set(range(SWITCH, change["last_frame"] + 1)) & set(frames) and frames[-1] == 119
    assert any("scene change at frame 50" in n for n in summary["notes"])
    events = [(e["first_frame"], e["last_frame"]) for e in summary["events"]]
    if not with_object:
        assert events == []  # the lit scene is the new normal, not an event lasting the night
    else:
        ((first, last),) = events
        assert OBJECT.start <= first <= OBJECT.start + 3 and OBJECT.stop - 3 <= last <= OBJECT.stop + 5


@pytest.mark.slow
@needs_ped2
def test_stream_mode_is_quiet_on_unchanged_footage_and_through_dusk(tmp_path):
    for name, scene in (("plain", {}), ("dusk", {"dusk_from": 20})):
        summary, frames = detect_summary(tmp_path, clip(tmp_path, name, **scene), "stream")
        assert summary["events"] == [] and summary["scene_changes"] == [], name
        assert frames == list(range(4, 120)), name


@pytest.mark.slow
@needs_ped2
def test_whole_mode_normalises_each_scene_over_itself(tmp_path):
    """No event runs from the switch to the end of the file, as one normalised over the whole clip did: the lit
    scene's frames are min-max normalised among themselves."""
    summary, frames = detect_summary(tmp_path, clip(tmp_path, "lit", switch_at=SWITCH), "whole")
    (change,) = summary["scene_changes"]
    assert change["first_frame"] == SWITCH and frames[-1] == 119
    assert not any(e["first_frame"] <= change["last_frame"] + 5 and e["last_frame"] >= 115 for e in summary["events"])


@pytest.mark.slow
@needs_ped2
def test_a_live_stream_reports_the_switch_once_and_hands_it_to_on_event(tmp_path):
    """The lights switch in a live MJPEG stream: one scene-change record in events.jsonl and one --on_event call,
    no anomaly event; scoring goes on in the lit scene."""
    hook = tmp_path / "hook.py"
    hook.write_text("import sys\nopen(sys.argv[1], 'a').write(sys.stdin.read())\n")
    handed = tmp_path / "handed.jsonl"
    with MjpegServer(ped2_stream(110, switch_at=40), fps=10) as server:
        done = subprocess.run(
            [
                sys.executable, "detect.py", "--video", server.url, "--trained_model", str(SHIPPED),
                "--out_dir", str(tmp_path / "out"), "--device", "cpu", "--threads", "1", "--max_frames", "110",
                "--on_event", f"{sys.executable} {hook} {handed}",
            ],
            cwd=ROOT, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (folder,) = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    records = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in records] == ["scene_change"], records
    assert 40 <= records[0]["first_frame"] <= 45 and records[0]["settled"]
    assert [json.loads(line)["kind"] for line in handed.read_text().splitlines()] == ["scene_change"]
    assert records[0]["start"] < records[0]["end"] and "note: scene change at frame" in done.stdout
    summary = json.loads((folder / "summary.json").read_text())
    assert [c["first_frame"] for c in summary["scene_changes"]] == [records[0]["first_frame"]]
    lines = (folder / "scores.csv").read_text().splitlines()[1:]
    assert max(int(line.split(",")[0]) for line in lines) > records[0]["last_frame"]
