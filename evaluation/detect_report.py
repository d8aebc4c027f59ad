"""The report of scoring one unlabelled video (detect.py): scores.csv, curve.png, alarms.txt, summary.json,
index.html. Every file is written atomically; index.html last.
"""
from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from dataset.sources import gaps_after
from evaluation.pages import (checked_video_links, csv_text, href, html_page, html_table, json_text, meta_block,
                              new_figure, save_png)
from evaluation.scores import true_runs
from utils import atomic_write_text

DETECT_CSV_HEADER = ("frame", "psnr", "score", "above_threshold")


def detect_csv_rows(frames, psnr, scores, threshold: float):
    """scores.csv rows of an unlabelled video (see DETECT_CSV_HEADER); alarm = score > threshold (strictly).

    frames: (N,) frame numbers; psnr: (N,) dB; scores: (N,). A generator, so detect.py can append the
    rows of each batch to an open file as it goes.
    """
    for f, p, s in zip(frames, psnr, scores):
        yield int(f), f"{p:.6f}", f"{s:.6f}", int(s > threshold)


def _plot_detect_curve(path: Path, frames: np.ndarray, scores: np.ndarray, threshold: float,
                       score_label: str) -> None:
    """Score curve of an unlabelled video with the alarm threshold and the frames above it."""
    above = scores > threshold
    fig = new_figure()
    ax = fig.add_subplot()
    ax.plot(frames, scores, lw=1.2, label=score_label)
    ax.axhline(threshold, color="red", ls="--", lw=1, label=f"threshold {threshold:.3g}")
    if above.any():
        ax.plot(frames[above], scores[above], "r.", ms=4, label=f"{int(above.sum())} frames above")
    ax.set(xlabel="frame index", ylabel="anomaly score", title="Anomaly score per frame")
    ax.legend(loc="best", fontsize=8)  # alarms usually sit mid-video; let matplotlib avoid covering them
    save_png(fig, path)


def _alarm_intervals(frames: np.ndarray, above: np.ndarray) -> list[tuple[int, int]]:
    """(first frame, last frame) of each consecutive run of scored frames above the threshold.

    A run is also split where frame numbers jump (frames that did not decode: the gap rule of the decode
    report, dataset.sources.gaps_after), so no interval spans them.
    """
    frames = np.asarray(frames)
    breaks = set(gaps_after(frames).tolist())   # frames are missing after index i
    intervals = []
    for a, b in true_runs(above):
        start = a
        for i in range(a, b):
            if i in breaks:
                intervals.append((int(frames[start]), int(frames[i])))
                start = i + 1
        intervals.append((int(frames[start]), int(frames[b])))
    return intervals


def _alarms_text(frames, scores, above, threshold: float) -> str:
    """alarms.txt: a commented summary with the intervals, then one 'frame<TAB>score' line per alarm."""
    intervals = _alarm_intervals(frames, above)
    lines = [f"# frames with anomaly score > {threshold:.6g}: {int(above.sum())} of {len(frames)}",
             "# intervals (first-last frame): " + (", ".join(f"{a}-{b}" for a, b in intervals) or "none"),
             "frame\tscore"]
    lines += [f"{int(f)}\t{s:.6f}" for f, s in zip(frames[above], scores[above])]
    return "\n".join(lines) + "\n"


def _detect_html(n_frames: int, n_above: int, threshold: float, intervals, meta: Mapping,
                 video: str | None) -> str:
    """index.html of an unlabelled video: alarm summary, score curve, heatmap video, alarm intervals, files, meta."""
    player = "" if video is None else (f'<video controls preload="metadata" src="{href(video)}"></video>'
                                       f'<br><a href="{href(video)}">heatmap video (mp4)</a>')
    notes = [f"<p><b>Interrupted</b>: scoring stopped early; the {n_frames} frames scored so far are all here.</p>"] \
        if meta.get("interrupted") else []
    notes += [f"<p>Note: {html.escape(str(n))}</p>" for n in meta.get("notes") or []]
    body = "\n".join([
        f"<p>{n_above} of {n_frames} scored frames have anomaly score &gt; {threshold:.4g}.</p>", *notes,
        '<img src="curve.png" alt="anomaly score curve">', player,
        "<h2>Alarm intervals</h2>",
        html_table(["first frame", "last frame", "span (frames)"], [(a, b, b - a + 1) for a, b in intervals],
                    numeric=(0, 1, 2)),
        '<p>Files: <a href="scores.csv">scores.csv</a>, <a href="alarms.txt">alarms.txt</a>, '
        '<a href="summary.json">summary.json</a></p>',
        meta_block(meta)])
    return html_page("Future frame prediction: anomaly scores", body)


def write_detect_report(out_dir: str | os.PathLike, frame_indices: Sequence[int], psnr: np.ndarray,
                        scores: np.ndarray, threshold: float, meta: dict, *, csv_written: bool = False,
                        video: str | None = None, score_label: str = "anomaly score") -> Path:
    """Report for scoring an unlabelled video; returns index.html's path.

    frame_indices: (N,) int frame numbers in the source video; psnr: (N,) dB; scores: (N,) anomaly
    scores; a frame alarms when score > threshold (strictly). Writes scores.csv
    (frame,psnr,score,above_threshold; skipped when `csv_written`, i.e. the caller streamed it with
    `detect_csv_rows`), curve.png, alarms.txt, summary.json (meta + threshold + alarm intervals) and
    index.html into `out_dir` (created). video: heatmap mp4 path relative to out_dir, linked from the page.
    score_label: legend of the score curve (e.g. how the score was normalised).
    """
    frames = np.asarray(frame_indices, dtype=np.int64)
    psnr, scores = np.asarray(psnr, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    if not len(frames) == len(psnr) == len(scores) or len(frames) == 0:
        raise ValueError(f"need equal, non-zero lengths: {len(frames)} frames, {len(psnr)} PSNR, {len(scores)} scores")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if video is not None:
        checked_video_links(out, {"heatmap": video})
    above = scores > threshold
    if not csv_written:
        atomic_write_text(out / "scores.csv",
                          csv_text(DETECT_CSV_HEADER, detect_csv_rows(frames, psnr, scores, threshold)))
    elif not (out / "scores.csv").is_file():
        raise ValueError(f"csv_written=True but {out / 'scores.csv'} does not exist")
    _plot_detect_curve(out / "curve.png", frames, scores, float(threshold), score_label)
    atomic_write_text(out / "alarms.txt", _alarms_text(frames, scores, above, float(threshold)))
    intervals = _alarm_intervals(frames, above)
    summary = {**meta, "threshold": float(threshold), "n_frames": len(frames),
               "n_above_threshold": int(above.sum()), "alarm_intervals": intervals}
    atomic_write_text(out / "summary.json", json_text(summary))
    index = out / "index.html"
    atomic_write_text(index, _detect_html(len(frames), int(above.sum()), float(threshold), intervals, meta,
                                          video))
    return index
