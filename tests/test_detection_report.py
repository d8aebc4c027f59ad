"""detect.py's report files on small fake scores."""

from __future__ import annotations

import csv
import json

import matplotlib.pyplot as plt
import numpy as np
import pytest
from helpers import leftovers, page_links, write_heatmap

from detection.report import (
    DETECT_CSV_HEADER,
    DetectPage,
    ScoredFrames,
    detect_caveats,
    detect_csv_rows,
    write_detect_report,
)


def test_detect_report(tmp_path):
    frames = np.arange(4, 14)
    scores = np.array([0.1, 0.2, 0.9, 0.95, 0.3, 0.2, 0.1, 0.8, 0.1, 0.1])
    index = write_detect_report(
        tmp_path, ScoredFrames(frames, 30 - 10 * scores, scores, 0.5), DetectPage({"video": "clip.avi"})
    )
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
    scores[[8, 9, 10, 11]] = 1.0  # frames 18, 19, 30, 31
    write_detect_report(tmp_path, ScoredFrames(frames, 30 - scores, scores, 0.5), DetectPage({}))
    assert json.loads((tmp_path / "summary.json").read_text())["alarm_intervals"] == [[18, 19], [30, 31]]
    assert "18-19, 30-31" in (tmp_path / "alarms.txt").read_text()


def test_detect_report_with_streamed_csv_and_video(tmp_path):
    frames, scores = np.arange(4, 11), np.array([0.0, 1.0, 4.0, 5.0, 0.5, 3.5, 0.0])
    with open(tmp_path / "scores.csv", "w", newline="") as f:  # as detect.py --mode stream writes it
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(DETECT_CSV_HEADER)
        writer.writerows(detect_csv_rows(frames, 30 - scores, scores, 3.0))
    streamed = (tmp_path / "scores.csv").read_text()
    write_heatmap(tmp_path / "heatmap.mp4")
    index = write_detect_report(
        tmp_path, ScoredFrames(frames, 30 - scores, scores, 3.0), DetectPage({}, csv_written=True, video="heatmap.mp4")
    )
    assert (tmp_path / "scores.csv").read_text() == streamed  # kept, not rewritten
    assert "heatmap.mp4" in page_links(index)
    assert "6-7, 9-9" in (tmp_path / "alarms.txt").read_text()
    with pytest.raises(ValueError, match="expected an existing file"):
        write_detect_report(
            tmp_path, ScoredFrames(frames, 30 - scores, scores, 3.0), DetectPage({}, video="missing.mp4")
        )


def test_whole_mode_caveat_is_about_the_clip_and_names_its_psnr_span():
    psnr = np.array([30.0, 30.4, 31.25, 30.1])
    (caveat,) = detect_caveats("whole", psnr, 1 - (psnr - psnr.min()) / np.ptp(psnr), 0.5)
    assert "relative to this clip" in caveat and "1.25 dB" in caveat and "--mode stream" in caveat
    assert detect_caveats("whole", np.full(5, 30.0), np.zeros(5), 0.5) == []  # flat: flat_videos_note says it
    # with the checkpoint's training statistics, whole mode also says when the clip is unlike the training footage
    assert detect_caveats("whole", psnr, np.zeros(4), 0.5, mean=31.0, std=1.0) == [caveat]
    relative, far = detect_caveats("whole", psnr - 15, np.zeros(4), 0.5, mean=31.0, std=1.0)
    assert relative == caveat and "far outside the training footage" in far


def test_stream_caveat_only_when_the_clip_is_far_from_training():
    mean, std = 38.2, 1.7
    near = np.array([37.0, 38.0, 39.0, 36.5])
    assert detect_caveats("stream", near, (mean - near) / std, 3.0, mean, std) == []
    far = np.full(6, 16.0)  # the case: 16 dB against 38.2 +- 1.7
    (caveat,) = detect_caveats("stream", far, (mean - far) / std, 3.0, mean, std)
    assert "far outside the training footage" in caveat and "16.00 dB" in caveat and "38.20 ± 1.70 dB" in caveat
    # a high threshold hides nothing: the median PSNR alone says the footage differs
    assert detect_caveats("stream", far, (mean - far) / std, 100.0, mean, std) == [caveat]
    assert detect_caveats("stream", np.array([]), np.array([]), 3.0, mean, std) == []
