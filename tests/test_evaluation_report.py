"""Report files, heatmap videos and the HTML page, on small fake data."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
from urllib.parse import unquote

import matplotlib.pyplot as plt
import numpy as np
import pytest
from helpers import META, fake_dataset, leftovers, page_links

import evaluation.pages as pages
import evaluation.report as report
from cli import Terminated, _raise_terminated
from errors import FFPError
from evaluation.metrics import aligned_videos, compute_metrics, video_scores
from evaluation.pages import StagedResult
from evaluation.report import EvalResults, ReportPage, write_report

# ----------------------------------------------------------------------------- labelled report


def test_report_files_exist(written_report):
    out, index, psnr, _ = written_report
    assert index == out / "index.html"
    for name in ("scores.csv", "metrics.json", "roc.png", "index.html"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    assert sorted(p.name for p in (out / "curves").iterdir()) == ["Test001.png", "Test_002.png"]
    assert leftovers(out) == []
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
    assert "min-max(PSNR) within each test video" in page and "padded with one normal frame" in page
    assert "<video" in page and "<script" not in page


def test_protocol_is_stated_once_and_the_config_is_folded_away(written_report):
    _, index, _, _ = written_report
    page = index.read_text()
    assert page.count("Protocol:") == 1 and page.count("sigma = 1 frames") == 1
    assert page.index("<details>") > page.index("Frame-level metrics")  # the config comes last, folded
    assert "<pre>" not in page.split("<details>")[0]
    assert "figcaption" not in page  # no captions repeating the plots' titles
    assert "monospace" not in page  # numbers in the page's font


def fake_examples(psnr, labels, numbers):
    """worst_frames of the fake dataset, with synthetic images standing in for the re-predicted frames."""
    rng = np.random.default_rng(1)
    examples = report.worst_frames(aligned_videos(psnr, labels), numbers, sigma=0.0)
    for ex in examples:
        ex.update(
            frame_rgb=rng.integers(0, 255, (16, 24, 3), dtype=np.uint8),
            prediction_rgb=rng.integers(0, 255, (16, 24, 3), dtype=np.uint8),
            error=rng.random((16, 24)).astype(np.float32),
        )
    return examples


def test_worst_frames_are_the_highest_normal_and_lowest_abnormal_scores():
    psnr, labels = fake_dataset()
    data = aligned_videos(psnr, labels)
    numbers = {k: 4 + np.arange(len(p)) for k, (p, _) in data.items()}
    picked = report.worst_frames(data, numbers, sigma=0.0, k=2, min_gap=3)
    alarms = [p for p in picked if p["kind"] == "false alarm"]
    misses = [p for p in picked if p["kind"] == "miss"]
    assert len(alarms) == 2 and len(misses) == 2
    normal = [s for name, (p, lab) in data.items() for s, lab_ in zip(video_scores(p, 0.0), lab) if lab_ == 0]
    assert alarms[0]["score"] == pytest.approx(max(normal))
    abnormal = [s for p, lab in data.values() for s, lab_ in zip(video_scores(p, 0.0), lab) if lab_ == 1]
    assert misses[0]["score"] == pytest.approx(min(abnormal))
    for kind in (alarms, misses):
        if kind[0]["video"] == kind[1]["video"]:
            assert abs(kind[0]["frame"] - kind[1]["frame"]) >= 3


def test_header_paper_column_examples_and_history(tmp_path):
    psnr, labels = fake_dataset()
    metrics = compute_metrics(psnr, labels)
    data = aligned_videos(psnr, labels)
    numbers = {k: 4 + np.arange(len(p)) for k, (p, _) in data.items()}
    header = {"dataset": "ped2", "git commit": "abc123", "torch": "2.x", "evaluation time": "5s"}
    history = [{"step": 500, "val_auc": 0.8}, {"step": 1000, "val_auc": 0.9}]
    page = ReportPage(
        {**META, "dataset": "ped2"}, header=header, examples=fake_examples(psnr, labels, numbers), history=history
    )
    index = write_report(tmp_path, EvalResults(psnr, labels, metrics), page)
    page = index.read_text()
    top = page.split("Frame-level metrics")[0]
    for label, value in header.items():
        assert f"<td>{label}</td><td>{value}</td>" in top
    assert f"<td class=num>{report.PAPER_MICRO_AUC['ped2']:.3f}</td>" in page
    for image in ("worst_false_alarms.png", "worst_misses.png", "history.png"):
        assert (tmp_path / image).stat().st_size > 0 and f'src="{image}"' in page
    page = ReportPage(META, history=[{"step": 5, "val_auc": None}])
    no_history = write_report(tmp_path / "b", EvalResults(psnr, labels, metrics), page)
    assert "history.png" not in no_history.read_text() and not (tmp_path / "b" / "history.png").exists()


def test_missing_video_link_rejected(tmp_path):
    psnr, labels = fake_dataset()
    with pytest.raises(ValueError, match="heatmap"):
        write_report(
            tmp_path,
            EvalResults(psnr, labels, compute_metrics(psnr, labels)),
            ReportPage(META, {"Test001": "nope.mp4"}),
        )


def test_failure_leaves_no_index_or_temp_files(tmp_path, monkeypatch):
    psnr, labels = fake_dataset()

    def broken(*args, **kwargs):
        raise RuntimeError("plot failed")

    monkeypatch.setattr(report, "_plot_video_curve", broken)
    with pytest.raises(RuntimeError):
        write_report(tmp_path, EvalResults(psnr, labels, compute_metrics(psnr, labels)), ReportPage(META))
    assert not (tmp_path / "index.html").exists()
    assert leftovers(tmp_path) == []


# ----------------------------------------------------------------------------- heatmap video


def test_staged_result_numbering_overwrite_and_failure(tmp_path):
    with StagedResult(tmp_path, "run", overwrite=False) as stage:
        (stage.dir / "a.txt").write_text("1")
        assert not (tmp_path / "run").exists()  # nothing visible until the end
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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "run_2"]  # no temp folders left


def test_unwritable_out_dir_is_ffperror(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    for out_dir in (blocker / "sub", blocker):  # a file where the folder or a parent should be
        with pytest.raises(FFPError, match=f"--out_dir {out_dir} is not writable: {blocker} is a file, not a folder"):
            with StagedResult(out_dir, "run", overwrite=False):
                pass


def test_a_second_sigterm_during_clean_up_leaves_no_temp_folder(tmp_path, monkeypatch):
    """SIGTERM arriving while a failed result folder is being removed is held until the removal is done."""
    real_rmtree = shutil.rmtree

    def rmtree_hit_by_a_signal(path, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # delivered at once unless the clean-up holds it
        real_rmtree(path, *args, **kwargs)

    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    monkeypatch.setattr(pages.shutil, "rmtree", rmtree_hit_by_a_signal)
    try:
        with pytest.raises(Terminated):
            with StagedResult(tmp_path / "out", "run", overwrite=False) as stage:
                (stage.dir / "half.txt").write_text("x")
                raise RuntimeError("the run failed")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert not (tmp_path / "out").exists()  # neither the hidden temp folder nor the --out_dir it made
