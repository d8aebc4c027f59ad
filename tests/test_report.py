"""Report files, heatmap videos and the HTML page, on small fake data."""
from __future__ import annotations

import csv
import json
from urllib.parse import unquote

import matplotlib.pyplot as plt
import pytest

import evaluation.report as report
from evaluation.metrics import compute_metrics
from evaluation.pages import StagedResult
from evaluation.report import write_report
from conftest import META, fake_dataset
from helpers import leftovers, page_links
from utils import FFPError

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
    assert "per-video min-max" in page and "pad trick" in page and "<video" in page
    assert "<script" not in page


def test_missing_video_link_rejected(tmp_path):
    psnr, labels = fake_dataset()
    with pytest.raises(ValueError, match="heatmap"):
        write_report(tmp_path, psnr, labels, compute_metrics(psnr, labels), META, videos={"Test001": "nope.mp4"})


def test_failure_leaves_no_index_or_temp_files(tmp_path, monkeypatch):
    psnr, labels = fake_dataset()

    def broken(*args, **kwargs):
        raise RuntimeError("plot failed")

    monkeypatch.setattr(report, "_plot_video_curve", broken)
    with pytest.raises(RuntimeError):
        write_report(tmp_path, psnr, labels, compute_metrics(psnr, labels), META)
    assert not (tmp_path / "index.html").exists()
    assert leftovers(tmp_path) == []


# ----------------------------------------------------------------------------- heatmap video

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
