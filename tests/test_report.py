"""Report files, heatmap videos and the HTML page, on small fake data."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote

import cv2
import matplotlib.pyplot as plt
import numpy as np
import pytest

import evaluation.report as report
from evaluation.metrics import compute_metrics
from evaluation.report import StagedResult, detect_csv_rows, write_detect_report, write_report
from evaluation.video import HeatmapVideoWriter, VmaxEstimator, choose_vmax
from helpers import page_links
from utils import FFPError

META = {"checkpoint": "weights/ped2_latest.pth", "step": np.int64(1200), "dropped_frames": 4,
        "selected_with_test_labels": False, "config": {"lr": np.float32(2e-4), "size": (64, 64)}}


def _fake_dataset():
    """Two videos: 'Test001' (30 frames, abnormal 12..20) and 'Test 002' (25 frames, all normal)."""
    rng = np.random.default_rng(0)
    lab1 = np.zeros(30, int)
    lab1[12:21] = 1
    psnr1 = 32 - 5 * lab1 + rng.normal(0, 0.7, 30)
    psnr2 = 33 + rng.normal(0, 0.7, 25)
    return {"Test001": psnr1, "Test 002": psnr2}, {"Test001": lab1, "Test 002": np.zeros(25, int)}




def _leftovers(folder: Path) -> list[Path]:
    """Temp files a failed or finished atomic write could leave behind."""
    return [p for p in folder.rglob("*") if p.name.startswith(".") or ".tmp" in p.name]


def _write_heatmap(path: Path, n: int = 7, size=(32, 48), labels=None) -> HeatmapVideoWriter:
    rng = np.random.default_rng(0)
    errs = [rng.random(size) * 0.02 for _ in range(n)]
    with HeatmapVideoWriter(path, fps=10, vmax=choose_vmax(errs), size=size, curve_length=n) as writer:
        for i, err in enumerate(errs):
            frame = np.repeat(rng.random(size)[..., None], 3, axis=2)
            writer.add(frame, err, score=i / max(n - 1, 1), label=None if labels is None else labels[i])
    return writer


def _count_frames(path: Path) -> tuple[int, int, int]:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened()
    width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n, width, height


# ----------------------------------------------------------------------------- labelled report

@pytest.fixture()
def written_report(tmp_path):
    psnr, labels = _fake_dataset()
    metrics = compute_metrics(psnr, labels, smooth_sigma=1.0)
    metrics["pixel_auroc"] = np.float64(0.8)
    out = tmp_path / "report"
    _write_heatmap(out / "videos" / "Test001.mp4", labels=labels["Test001"][:7])
    index = write_report(out, psnr, labels, metrics, META, videos={"Test001": "videos/Test001.mp4"})
    return out, index, psnr, metrics


def test_report_files_exist(written_report):
    out, index, psnr, _ = written_report
    assert index == out / "index.html"
    for name in ("scores.csv", "metrics.json", "roc.png", "index.html"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    assert sorted(p.name for p in (out / "curves").iterdir()) == ["Test001.png", "Test_002.png"]
    assert _leftovers(out) == []
    assert plt.get_fignums() == []


def test_scores_csv(written_report):
    out, _, psnr, _ = written_report
    with open(out / "scores.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["video", "frame", "psnr", "score", "label"]
    assert len(rows) - 1 == sum(len(v) for v in psnr.values())
    first = rows[1]
    assert first[0] == "Test001" and first[1] == "4"  # first scored frame is frame 4 of the video
    scores = [float(r[3]) for r in rows[1:] if r[0] == "Test001"]
    assert min(scores) == 0.0 and max(scores) == 1.0  # unsmoothed per-video min-max score


def test_metrics_json(written_report):
    out, _, _, metrics = written_report
    data = json.loads((out / "metrics.json").read_text())
    for key in ("micro_auc", "macro_auc", "eer", "ap", "raw_psnr_micro_auc", "pixel_auroc"):
        assert type(data[key]) is float and 0.0 <= data[key] <= 1.0
    assert data["micro_auc"] == pytest.approx(metrics["micro_auc"])
    assert type(data["n_frames"]) is int and data["n_frames"] == 55
    assert set(data["per_video_auc"]) == {"Test001", "Test 002"}
    assert data["checkpoint"] == "weights/ped2_latest.pth" and data["step"] == 1200
    assert data["selected_with_test_labels"] is False and data["smooth_sigma"] == 1.0
    assert data["config"]["size"] == [64, 64] and data["config"]["lr"] == pytest.approx(2e-4)


def test_index_links_resolve(written_report):
    out, index, _, _ = written_report
    links = page_links(index)
    assert "roc.png" in links and "videos/Test001.mp4" in links
    assert sum(link.startswith("curves/") for link in links) == 2
    for link in links:
        assert "://" not in link and not link.startswith("/")
        assert (out / unquote(link)).is_file(), link
    page = index.read_text()
    assert "per-video min-max" in page and "pad trick" in page and "<video" in page
    assert "<script" not in page


def test_missing_video_link_rejected(tmp_path):
    psnr, labels = _fake_dataset()
    with pytest.raises(ValueError, match="heatmap"):
        write_report(tmp_path, psnr, labels, compute_metrics(psnr, labels), META, videos={"Test001": "nope.mp4"})


def test_failure_leaves_no_index_or_temp_files(tmp_path, monkeypatch):
    psnr, labels = _fake_dataset()

    def broken(*args, **kwargs):
        raise RuntimeError("plot failed")

    monkeypatch.setattr(report, "_plot_video_curve", broken)
    with pytest.raises(RuntimeError):
        write_report(tmp_path, psnr, labels, compute_metrics(psnr, labels), META)
    assert not (tmp_path / "index.html").exists()
    assert _leftovers(tmp_path) == []


# ----------------------------------------------------------------------------- heatmap video

def test_heatmap_video_frames_and_size(tmp_path):
    path = tmp_path / "v.mp4"
    writer = _write_heatmap(path, n=7, size=(32, 48), labels=[0, 0, 1, 1, 0, 0, 0])
    # 32 px high -> integer upscale 6 -> panels of 192 x 288; three panels side by side; strip of 80 below.
    assert writer.panel_size == (192, 288)
    assert _count_frames(path) == (7, 3 * 288, 192 + 80)
    assert _leftovers(tmp_path) == []


def test_heatmap_video_removed_on_exception(tmp_path):
    path = tmp_path / "v.mp4"
    with pytest.raises(RuntimeError):
        with HeatmapVideoWriter(path, vmax=0.01, size=(16, 16)) as writer:
            writer.add(np.zeros((16, 16, 3)), np.zeros((16, 16)), 0.5, None)
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_heatmap_writer_cannot_open(tmp_path):
    with pytest.raises(FFPError, match="mp4"):
        HeatmapVideoWriter(tmp_path / "v.notavideo", vmax=0.01, size=(16, 16))
    assert list(tmp_path.iterdir()) == []


def test_choose_vmax_percentile():
    # Values 0.00 .. 0.99; the 50th percentile of 100 evenly spaced values is (0.49 + 0.50) / 2.
    errors = [np.arange(50).reshape(5, 10) / 100, np.arange(50, 100).reshape(5, 10) / 100]
    assert choose_vmax(errors, q=50) == pytest.approx(0.495)
    assert choose_vmax([np.zeros((4, 4))]) > 0  # a perfect prediction still gives a usable scale


def test_vmax_estimator_bounded_and_close_to_exact():
    rng = np.random.default_rng(0)
    maps = [rng.random((128, 128)) ** 3 for _ in range(40)]
    est = VmaxEstimator(q=99.0, max_samples=50_000)
    for m in maps:
        est.add(m)
    assert sum(c.size for c in est._chunks) <= 50_000 + 16384
    exact = np.percentile(np.concatenate([m.ravel() for m in maps]), 99.0)
    assert est.value() == pytest.approx(exact, rel=0.02)
    batched = VmaxEstimator(q=99.0, max_samples=50_000)
    batched.add(np.stack(maps[:20]))   # a B x H x W batch counts as 20 frames
    batched.add(np.stack(maps[20:]))
    assert batched.value() == pytest.approx(est.value(), rel=0.02)


def test_heatmap_writer_score_range_threshold_first_frame(tmp_path):
    path = tmp_path / "z.mp4"
    with HeatmapVideoWriter(path, vmax=0.01, size=(32, 48), curve_length=5, score_range=(-2.0, 8.0),
                            threshold=3.0, first_frame=4) as writer:
        writer.add_batch(np.zeros((5, 32, 48, 3), np.uint8), np.zeros((5, 32, 48)), [-1.0, 0.0, 2.0, 5.0, 9.0])
    assert _count_frames(path)[0] == 5
    with pytest.raises(ValueError, match="score_range"):
        HeatmapVideoWriter(tmp_path / "bad.mp4", vmax=0.01, size=(32, 48), score_range=(1.0, 1.0))


def test_staged_result_numbering_overwrite_and_failure(tmp_path):
    with StagedResult(tmp_path, "run", overwrite=False) as stage:
        (stage.dir / "a.txt").write_text("1")
        assert not (tmp_path / "run").exists()    # nothing visible until the end
    assert stage.path == tmp_path / "run" and (stage.path / "a.txt").read_text() == "1"
    with StagedResult(tmp_path, "run", overwrite=False) as second:
        (second.dir / "a.txt").write_text("2")
    assert second.path == tmp_path / "run_2"
    with StagedResult(tmp_path, "run", overwrite=True) as third:
        (third.dir / "b.txt").write_text("3")
    assert third.path == tmp_path / "run" and sorted(p.name for p in third.path.iterdir()) == ["b.txt"]
    with pytest.raises(RuntimeError):
        with StagedResult(tmp_path, "crash", overwrite=False) as failed:
            (failed.dir / "half.txt").write_text("x")
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "run_2"]   # no temp folders left


def test_unwritable_out_dir_is_ffperror(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(FFPError, match="--out_dir"):
        with StagedResult(blocker / "sub", "run", overwrite=False):
            pass


# ----------------------------------------------------------------------------- unlabelled video

def test_detect_report(tmp_path):
    frames = np.arange(4, 14)
    scores = np.array([0.1, 0.2, 0.9, 0.95, 0.3, 0.2, 0.1, 0.8, 0.1, 0.1])
    index = write_detect_report(tmp_path, frames, 30 - 10 * scores, scores, 0.5, {"video": "clip.avi"})
    with open(tmp_path / "scores.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["frame", "psnr", "score", "above_threshold"] and len(rows) == 11
    assert [r[0] for r in rows[1:] if r[3] == "1"] == ["6", "7", "11"]
    alarms = (tmp_path / "alarms.txt").read_text()
    assert "6-7, 11-11" in alarms
    assert [line.split("\t")[0] for line in alarms.splitlines()[3:]] == ["6", "7", "11"]
    for link in page_links(index):
        assert (tmp_path / link).is_file()
    assert (tmp_path / "curve.png").is_file() and plt.get_fignums() == []
    assert json.loads((tmp_path / "summary.json").read_text())["alarm_intervals"] == [[6, 7], [11, 11]]
    assert _leftovers(tmp_path) == []


def test_alarm_intervals_never_span_frames_that_did_not_decode(tmp_path):
    """Frames 20-29 of a damaged file are missing: alarms on 18, 19 and 30, 31 are two intervals, not 18-31."""
    frames = np.concatenate([np.arange(10, 20), np.arange(30, 40)])
    scores = np.zeros(len(frames))
    scores[[8, 9, 10, 11]] = 1.0            # frames 18, 19, 30, 31
    write_detect_report(tmp_path, frames, 30 - scores, scores, 0.5, {})
    assert json.loads((tmp_path / "summary.json").read_text())["alarm_intervals"] == [[18, 19], [30, 31]]
    assert "18-19, 30-31" in (tmp_path / "alarms.txt").read_text()


def test_detect_report_with_streamed_csv_and_video(tmp_path):
    frames, scores = np.arange(4, 11), np.array([0.0, 1.0, 4.0, 5.0, 0.5, 3.5, 0.0])
    with open(tmp_path / "scores.csv", "w", newline="") as f:   # as detect.py --mode stream writes it
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(report.DETECT_CSV_HEADER)
        writer.writerows(detect_csv_rows(frames, 30 - scores, scores, 3.0))
    streamed = (tmp_path / "scores.csv").read_text()
    _write_heatmap(tmp_path / "heatmap.mp4")
    index = write_detect_report(tmp_path, frames, 30 - scores, scores, 3.0, {}, csv_written=True,
                                video="heatmap.mp4")
    assert (tmp_path / "scores.csv").read_text() == streamed     # kept, not rewritten
    assert "heatmap.mp4" in page_links(index)
    assert "6-7, 9-9" in (tmp_path / "alarms.txt").read_text()
    with pytest.raises(ValueError, match="expected an existing file"):
        write_detect_report(tmp_path, frames, 30 - scores, scores, 3.0, {}, video="missing.mp4")


# ----------------------------------------------------------------------------- rendering in a browser

def test_index_renders_in_headless_chromium(written_report, tmp_path):
    chromium = "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not installed (/usr/bin/chromium missing); page rendering not checked")
    _, index, _, _ = written_report
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,2000",
                    index.resolve().as_uri()], check=True, timeout=60, capture_output=True)
    image = cv2.imread(str(shot))
    assert image is not None and image.std() > 10  # a blank (all-white) page has std ~0
