"""detect.py's report files on small fake scores."""
from __future__ import annotations

import csv
import json

import matplotlib.pyplot as plt
import numpy as np
import pytest

from evaluation.detect_report import DETECT_CSV_HEADER, detect_csv_rows, write_detect_report
from helpers import leftovers, page_links, write_heatmap


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
    assert leftovers(tmp_path) == []


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
        writer.writerow(DETECT_CSV_HEADER)
        writer.writerows(detect_csv_rows(frames, 30 - scores, scores, 3.0))
    streamed = (tmp_path / "scores.csv").read_text()
    write_heatmap(tmp_path / "heatmap.mp4")
    index = write_detect_report(tmp_path, frames, 30 - scores, scores, 3.0, {}, csv_written=True,
                                video="heatmap.mp4")
    assert (tmp_path / "scores.csv").read_text() == streamed     # kept, not rewritten
    assert "heatmap.mp4" in page_links(index)
    assert "6-7, 9-9" in (tmp_path / "alarms.txt").read_text()
    with pytest.raises(ValueError, match="expected an existing file"):
        write_detect_report(tmp_path, frames, 30 - scores, scores, 3.0, {}, video="missing.mp4")
