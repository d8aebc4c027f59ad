"""detect.py on unlabelled input: folders of frames, .avi files, both score modes, --start, a clip where nothing
happens, a real clip, streaming memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from helpers import ROOT, TINY, read_scores, run_detect, save_random_checkpoint

import detect
from cli import run_cli
from dataset import find_dataset, prepare_frame, read_frame
from detection.scenes import DRIFT_S, DRIFT_SHARE
from inference.predict import generator_from_state, training_psnr_stats
from model import Generator


@pytest.fixture(scope="module")
def test_video(synthetic_root) -> Path:
    """Frame folder of synthetic test video 01 (120 frames of 64×96, abnormal interval inside)."""
    return find_dataset(synthetic_root, "synthetic").test[0].source.path


@pytest.fixture(scope="module")
def ckpts(synthetic_root, tmp_path_factory) -> dict[str, Path]:
    """'plain': no psnr_stats; 'stats': with training PSNR stats computed by training_psnr_stats."""
    tmp = tmp_path_factory.mktemp("ckpt")
    plain = save_random_checkpoint(tmp / "plain.pth")
    state = torch.load(plain, weights_only=True)
    g = generator_from_state(state, TINY, torch.device("cpu"), "test")
    train = find_dataset(synthetic_root, "synthetic").train
    stats = training_psnr_stats(g, train, TINY, torch.device("cpu"), max_windows=64)
    return {"plain": plain, "stats": save_random_checkpoint(tmp / "stats.pth", psnr_stats=stats)}


def write_avi(path: Path, frames: list[Path], fourcc: str = "MJPG") -> Path:
    size = cv2.imread(str(frames[0])).shape[1::-1]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10.0, size)
    assert writer.isOpened(), f"OpenCV cannot write {fourcc}"
    for f in frames:
        writer.write(cv2.imread(str(f)))
    writer.release()
    return path


def test_training_psnr_stats(synthetic_root):
    torch.manual_seed(0)
    g = Generator(TINY.in_frames, TINY.g_widths).train()
    videos = find_dataset(synthetic_root, "synthetic").train
    stats = training_psnr_stats(g, videos, TINY, torch.device("cpu"), max_windows=40)
    assert set(stats) == {"mean", "std", "n"} and stats["n"] == 40
    assert all(isinstance(stats[k], float) for k in ("mean", "std")) and stats["std"] > 0
    assert 0 < stats["mean"] < 100
    assert g.training  # put back in the mode it was in (train.py calls it mid-training)


def test_prepare_frame_is_read_frame(test_video):
    path = sorted(test_video.iterdir())[0]
    assert np.array_equal(read_frame(path, 32, 48), prepare_frame(cv2.imread(str(path)), 32, 48))


def test_whole_mode_on_folder(test_video, ckpts, tmp_path):
    out = run_detect(test_video, ckpts["plain"], tmp_path)
    assert out.name == "detect_01"
    rows = read_scores(out)
    assert [int(r["frame"]) for r in rows] == list(range(4, 120))  # one row per predicted frame
    scores = np.array([float(r["score"]) for r in rows])
    assert scores.min() == 0.0 and scores.max() == 1.0  # 1 - minmax over the whole file
    above = [int(r["frame"]) for r in rows if r["above_threshold"] == "1"]
    assert above == [int(r["frame"]) for r in rows if float(r["score"]) > 0.5]
    alarms = (out / "alarms.txt").read_text().splitlines()
    assert [int(line.split("\t")[0]) for line in alarms[3:]] == above
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "whole" and summary["threshold"] == 0.5 and summary["n_frames"] == 116
    assert (out / "curve.png").stat().st_size > 0 and (out / "index.html").is_file()
    assert run_detect(test_video, ckpts["plain"], tmp_path).name == "detect_01_2"  # numbered sibling


def test_user_threshold_lists_the_frames_above_it(test_video, ckpts, tmp_path):
    out = run_detect(test_video, ckpts["plain"], tmp_path, "--threshold", "0.9", "--max_frames", "60")
    rows = read_scores(out)
    assert len(rows) == 60 - 4
    expected = [r["frame"] for r in rows if float(r["score"]) > 0.9]
    alarms = (out / "alarms.txt").read_text()
    assert f"score > 0.9: {len(expected)} of 56" in alarms
    assert [line.split("\t")[0] for line in alarms.splitlines()[3:]] == expected


def test_events_follow_the_gap_and_minimum_flags(test_video, ckpts, tmp_path, capsys):
    """summary.json's events are the alarm frames merged with --event_gap / --min_event (frames or seconds at the
    input's rate: a folder is 10 fps); the page lists them and states the whole-mode caveat."""
    from detection.events import merge_events

    out = run_detect(test_video, ckpts["plain"], tmp_path / "a", "--event_gap", "0.3s", "--min_event", "2")
    summary = json.loads((out / "summary.json").read_text())
    rows = read_scores(out)
    frames, scores = np.array([int(r["frame"]) for r in rows]), np.array([float(r["score"]) for r in rows])
    expected = [e.as_dict() for e in merge_events(frames, scores, 0.5, 10.0, gap_frames=3, min_frames=2)]
    assert summary["n_events"] == len(expected) == len(summary["events"]) > 0
    for got, want in zip(summary["events"], expected):  # scores.csv rounds the scores: the peak to 1e-5
        assert got["peak_score"] == pytest.approx(want.pop("peak_score"), abs=1e-5)
        assert {k: got[k] for k in want} == pytest.approx(want)
    assert (summary["event_gap_frames"], summary["min_event_frames"], summary["fps"]) == (3, 2, 10.0)
    assert all(e["n_frames"] >= 2 for e in summary["events"])
    printed = capsys.readouterr().out
    assert f"{len(expected)} event" in printed and "relative to this clip" in printed
    page = (out / "index.html").read_text()
    assert "<h2>Events</h2>" in page and "relative to this clip" in page and "01 — whole mode" in page
    assert page.index("<details>") > page.index("<h2>Events</h2>")  # the run's details folded, last
    run = summary["run"]  # the header: what ran where, how long
    assert run["mode"] == "whole" and run["input"] == str(test_video) and "(step 0)" in run["checkpoint"]
    for label in ("scored", "git commit", "torch", "device", "scoring time"):
        assert run[label] and f"<td>{label}</td>" in page.split("<h2>Events</h2>")[0], label
    plain = run_detect(test_video, ckpts["plain"], tmp_path / "b", "--event_gap", "0", "--min_event", "1")
    runs = json.loads((plain / "summary.json").read_text())
    assert [[e["first_frame"], e["last_frame"]] for e in runs["events"]] == runs["alarm_intervals"]


@pytest.mark.parametrize("flag, value", [("--event_gap", "-1"), ("--min_event", "0.5"), ("--event_gap", "soon")])
def test_bad_event_flags_are_one_error_line(test_video, ckpts, tmp_path, capsys, flag, value):
    argv = ["--video", str(test_video), "--trained_model", str(ckpts["plain"]), "--out_dir", str(tmp_path), flag, value]
    assert run_cli(detect.main, argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {flag} ") and not any(tmp_path.iterdir())


def test_stream_mode_on_avi_with_video(test_video, ckpts, tmp_path):
    avi = write_avi(tmp_path / "clip.avi", sorted(test_video.iterdir()))
    out = run_detect(avi, ckpts["stats"], tmp_path / "r", "--mode", "stream", "--save_video", "--batch_size", "7")
    assert out.name == "detect_clip"
    rows = read_scores(out)
    assert [int(r["frame"]) for r in rows] == list(range(4, 120))
    stats = torch.load(ckpts["stats"], weights_only=True)["psnr_stats"]
    psnr, scores = (np.array([float(r[k]) for r in rows]) for k in ("psnr", "score"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["threshold"] == 3.0 and summary["scene_changes"] == []
    base, expected = stats["mean"], []  # the training mean, then following drifts (docs/detection.md#modes)
    for value in psnr:
        expected.append((base - value) / stats["std"])
        if abs(expected[-1]) <= DRIFT_SHARE * 3.0:
            base += (value - base) / (DRIFT_S * summary["fps"])
    np.testing.assert_allclose(scores, expected, atol=1e-4)
    cap = cv2.VideoCapture(str(out / "heatmap.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 116
    assert 'src="heatmap.mp4"' in (out / "index.html").read_text()


def test_lossless_avi_scores_like_the_folder(test_video, ckpts, tmp_path):
    """A video file goes through the same preprocessing as frame files (prepare_frame)."""
    frames = sorted(test_video.iterdir())[:30]
    avi = write_avi(tmp_path / "lossless.avi", frames, "FFV1")
    folder = tmp_path / "frames"
    folder.mkdir()
    for f in frames:
        (folder / f.name).write_bytes(f.read_bytes())
    from_file = read_scores(run_detect(avi, ckpts["plain"], tmp_path / "r"))
    from_folder = read_scores(run_detect(folder, ckpts["plain"], tmp_path / "r"))
    assert [r["psnr"] for r in from_file] == [r["psnr"] for r in from_folder]


def test_stream_mode_without_stats_is_a_clear_error(test_video, ckpts, tmp_path, capsys):
    """A checkpoint without statistics whose training data cannot be found: one line saying what to do."""
    argv = [
        "--video",
        str(test_video),
        "--trained_model",
        str(ckpts["plain"]),
        "--mode",
        "stream",
        "--out_dir",
        str(tmp_path),
        "--data_root",
        str(tmp_path / "nowhere"),
    ]
    assert run_cli(detect.main, argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "psnr_stats" in err and "--mode whole" in err and "--psnr_mean" in err
    assert list(tmp_path.iterdir()) == []
    # ... and explicit statistics make it work.
    out = run_detect(
        test_video,
        ckpts["plain"],
        tmp_path,
        "--mode",
        "stream",
        "--psnr_mean",
        "20",
        "--psnr_std",
        "2",
        "--max_frames",
        "20",
    )
    assert len(read_scores(out)) == 16


def _empty_folder(tmp: Path) -> Path:
    (tmp / "empty").mkdir()
    return tmp / "empty"


def _garbage_file(tmp: Path) -> Path:
    (tmp / "bad.avi").write_bytes(b"not a video at all")
    return tmp / "bad.avi"


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda tmp: tmp / "missing.mp4", "does not exist"),
        (_empty_folder, "holds no frames"),
        (_garbage_file, "cannot open video file"),
    ],
)
def test_bad_video_inputs(make, fragment, ckpts, tmp_path, capsys):
    video = make(tmp_path)
    assert (
        run_cli(
            detect.main,
            ["--video", str(video), "--trained_model", str(ckpts["plain"]), "--out_dir", str(tmp_path / "r")],
        )
        == 1
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and fragment in err and str(video) in err
    assert not (tmp_path / "r").exists() or list((tmp_path / "r").iterdir()) == []


def test_too_short_video(test_video, ckpts, tmp_path, capsys):
    argv = [
        "--video",
        str(test_video),
        "--trained_model",
        str(ckpts["plain"]),
        "--max_frames",
        "4",
        "--out_dir",
        str(tmp_path),
    ]
    assert run_cli(detect.main, argv) == 1
    assert "4 frame(s) read, fewer than the 5-frame window" in capsys.readouterr().err


def test_real_clip_vtest(shared_data, ckpts, tmp_path):
    """A real street clip (OpenCV's sample vtest.avi from ../shared: 768×576, people walking), decoded by OpenCV
    and shrunk to the model size."""
    vtest = shared_data / "real_video" / "vtest.avi"
    out = run_detect(vtest, ckpts["stats"], tmp_path, "--mode", "stream", "--max_frames", "120")
    rows = read_scores(out)
    assert len(rows) == 116 and all(np.isfinite(float(r["psnr"])) for r in rows)
    assert json.loads((out / "summary.json").read_text())["frames_read"] == 120


def test_real_clip_from_ped2(shared_data, ckpts, tmp_path):
    """A real clip: the first 60 frames of UCSD Ped2 Test004 (a cart) written as an MJPG .avi, whole mode + video."""
    frames = find_dataset(shared_data, "ped2").test[3].source.files[:60]
    clip = write_avi(tmp_path / "ped2_test004.avi", frames)
    out = run_detect(clip, ckpts["stats"], tmp_path / "out", "--save_video")
    rows = read_scores(out)
    assert len(rows) == 56 and all(np.isfinite(float(r["psnr"])) for r in rows)
    assert (out / "curve.png").stat().st_size > 0 and (out / "alarms.txt").is_file()
    video = cv2.VideoCapture(str(out / "heatmap.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 56
    video.release()


MEMORY_SCRIPT = textwrap.dedent("""
    import json, sys
    import torch
    torch.set_num_threads(1)
    import array
    from types import SimpleNamespace
    from dataset.resample import Continuity
    from detection.file import score_pass
    from detection.normalise import Normaliser
    from inference.predict import TorchPredictor
    from model import Generator

    torch.manual_seed(0)
    g = TorchPredictor(Generator(4, (4, 8)).eval(), 4, torch.device("cpu"))

    class batches:  # lazily made 32x48 frames: nothing of the stream exists up front (like dataset.FrameBatches)
        def __init__(self, n, size=64):
            self.n, self.size, self.numbers, self.report = n, size, array.array("q"), None
            self.seconds = array.array("d")

        def __iter__(self):
            rng = torch.Generator().manual_seed(0)
            for start in range(0, self.n, self.size):
                batch = torch.randint(0, 256, (min(self.size, self.n - start), 3, 32, 48), dtype=torch.uint8,
                                      generator=rng)
                self.numbers.extend(range(start, start + len(batch)))
                self.seconds.extend(n / 10 for n in range(start, start + len(batch)))
                yield batch

    def peak_kb():
        return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])

    norm = Normaliser("stream", 30.0, 2.0)
    inp = SimpleNamespace(start=0, continuity=Continuity, scored_fps=lambda: 10.0)  # no breaks, 10 fps
    job = SimpleNamespace(predictor=g, norm=norm, threshold=3.0)  # detection.file.FileJob's fields score_pass uses
    from pathlib import Path
    # warm-up: allocator, model, first batches
    score_pass(job, batches(2_000), inp, Path(sys.argv[1] + ".warm"))
    before = peak_kb()
    psnr = score_pass(job, batches(20_000), inp, Path(sys.argv[1])).psnr
    print(json.dumps({"n": len(psnr), "growth_kb": peak_kb() - before}))
""")


@pytest.mark.slow
def test_streaming_memory_does_not_grow_with_length(tmp_path):
    """20,000 frames through the streaming path: peak RSS grows < 16 MB over a 2,000-frame warm-up run.

    Keeping the frames would need 20,000×32×48×3 B = 92 MB (uint8) and 368 MB as network floats;
    the per-frame PSNR the stream keeps is 80 kB.
    """
    csv_path = tmp_path / "scores.csv"
    result = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(csv_path)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["n"] == 19_996
    assert report["growth_kb"] < 16 * 1024, report
    assert sum(1 for _ in open(csv_path)) == 19_996 + 1  # header + one row per frame, written as it went


def test_detect_start_scores_the_rest(clean_mp4, tmp_path):
    """detect.py --start 6s on a 10 fps file scores frames 60..119 (frames 56-59 are the first window's history)."""
    ckpt = save_random_checkpoint(tmp_path / "c.pth")
    rows = read_scores(run_detect(clean_mp4[0], ckpt, tmp_path / "out", "--start", "6s"))
    assert [int(r["frame"]) for r in rows] == list(range(60, 120))


def static_clip(folder: Path, n: int = 12) -> Path:
    folder.mkdir(parents=True)
    frame = np.full((24, 36, 3), 90, np.uint8)
    for i in range(n):
        cv2.imwrite(str(folder / f"{i:03d}.png"), frame)
    return folder


def test_a_clip_where_nothing_happens_scores_zero_and_says_so(tmp_path, capsys):
    """detect.py --mode whole: every frame's PSNR is the same, so min-max has no spread: scores 0 (no alarm) and a
    note in the output, summary.json and the page. --mode stream on the same clip: one finite z-score for all."""
    clip, ckpt = static_clip(tmp_path / "clip"), save_random_checkpoint(tmp_path / "c.pth")
    out = run_detect(clip, ckpt, tmp_path / "whole")
    rows = read_scores(out)
    assert (
        len(rows) == 8 and {float(r["score"]) for r in rows} == {0.0} and all(r["above_threshold"] == "0" for r in rows)
    )
    assert "PSNR span below 0.1 dB" in capsys.readouterr().out
    assert any("PSNR span below 0.1 dB" in n for n in json.loads((out / "summary.json").read_text())["notes"])
    assert "PSNR span below 0.1 dB" in (out / "index.html").read_text()
    rows = read_scores(
        run_detect(clip, ckpt, tmp_path / "stream", "--mode", "stream", "--psnr_mean", "30", "--psnr_std", "2")
    )
    assert len({r["score"] for r in rows}) == 1 and np.isfinite(float(rows[0]["score"]))
