"""The report of scoring one unlabelled video (detect.py): scores.csv, curve.png, alarms.txt, summary.json,
index.html. Every file is written atomically; index.html last.

The report is about events (detection.events: alarm frames merged across short gaps, flicker dropped), with
the per-frame alarms kept in alarms.txt and scores.csv; `detect_caveats` are the warnings about what a score
can mean on this clip, shown at the top of the page and printed by detect.py.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from config import FOLDER_FPS
from dataset import gaps_after
from detection.events import Event, events_line, events_rule, merge_events
from evaluation.pages import (
    checked_video_links,
    csv_text,
    href,
    html_page,
    html_table,
    json_text,
    meta_block,
    new_figure,
    run_table,
    save_png,
)
from evaluation.scores import is_flat, true_runs
from utils.files import atomic_write_text

DETECT_CSV_HEADER = ("frame", "psnr", "score", "above_threshold")
OOD_STDS = 3.0  # stream mode: a median PSNR this many training stds below the training mean is "far outside"


def detect_caveats(
    mode: str, psnr, scores, threshold: float, mean: float | None = None, std: float | None = None
) -> list[str]:
    """Caveats about what this clip's scores can mean, one sentence each (detect.py prints them as 'note: ...',
    the report shows them at the top).

    mode 'whole': always (unless the PSNR has no spread, `is_flat`: then every score is 0 and
    flat_videos_note says so) the scores are relative to the clip, with its PSNR span (max − min, dB); and, when
    the training statistics are known, the clip is far outside the training footage if its median PSNR is more
    than OOD_STDS (3) training stds below the training mean.
    mode 'stream': once, when the clip looks out of distribution: its median score is above the threshold or
    its median PSNR is more than OOD_STDS training stds below the training mean. psnr: (N,) dB; scores:
    (N,); mean, std: the training PSNR statistics (dB), None when unknown.
    """
    psnr = np.asarray(psnr, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if not len(psnr):
        return []
    median_psnr = float(np.median(psnr))
    known = mean is not None and std is not None
    below = mean is not None and std is not None and median_psnr < mean - OOD_STDS * std  # = known and ...
    training = f"{mean:.2f} ± {std:.2f} dB" if known else "(unknown)"
    far = [
        f"this clip is far outside the training footage: median PSNR {median_psnr:.2f} dB against training "
        f'mean {training}; every alarm may just mean "different camera/scene"'
    ]
    if mode == "whole":
        relative = (
            []
            if is_flat(psnr)
            else [
                "whole-mode scores are relative to this clip: 1 − min-max(PSNR) always spans 0..1, so about half of "
                f"any clip can exceed 0.5 even when nothing happens (PSNR span here {float(np.ptp(psnr)):.2f} dB); "
                "use --mode stream to compare against the training footage"
            ]
        )
        return relative + (far if below else [])
    return far if below or float(np.median(scores)) > threshold else []


def detect_csv_rows(frames, psnr, scores, threshold: float):
    """scores.csv rows of an unlabelled video (see DETECT_CSV_HEADER); alarm = score > threshold (strictly).

    frames: (N,) frame numbers; psnr: (N,) dB; scores: (N,). A generator, so detect.py can append the
    rows of each batch to an open file as it goes.
    """
    for f, p, s in zip(frames, psnr, scores):
        yield int(f), f"{p:.6f}", f"{s:.6f}", int(s > threshold)


def _plot_detect_curve(
    path: Path,
    frames: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    score_label: str,
    events: Sequence[Event],
    fps: float,
    title: str,
) -> None:
    """Score curve of an unlabelled video over its frame numbers (seconds on the top axis), the threshold, and
    the events as shaded spans behind the line (each covers its frames' full width: first − ½ to last + ½)."""
    fig = new_figure((8.0, 3.4))
    ax = fig.add_subplot()
    for i, ev in enumerate(events):
        ax.axvspan(
            ev.first_frame - 0.5,
            ev.last_frame + 0.5,
            color="tab:red",
            alpha=0.2,
            lw=0,
            zorder=1,
            label=f"{len(events)} event{'' if len(events) == 1 else 's'}" if i == 0 else None,
        )
    ax.axhline(threshold, color="red", ls="--", lw=1, zorder=2, label=f"threshold {threshold:.3g}")
    ax.plot(frames, scores, lw=1.2, color="tab:blue", zorder=3, label=score_label)
    ax.set(xlabel="frame number", ylabel="anomaly score", title=title or "Anomaly score per frame")

    def to_seconds(frame: Any) -> Any:  # arrays in practice; matplotlib's stubs say ArrayLike
        return frame / fps

    def to_frames(seconds: Any) -> Any:
        return seconds * fps

    top = ax.secondary_xaxis("top", functions=(to_seconds, to_frames))
    top.set_xlabel("seconds", fontsize=8)
    top.tick_params(labelsize=8)
    ax.legend(loc="best", fontsize=8)  # alarms usually sit mid-video; let matplotlib avoid covering them
    save_png(fig, path)


def _alarm_intervals(frames: np.ndarray, above: np.ndarray) -> list[tuple[int, int]]:
    """(first frame, last frame) of each consecutive run of scored frames above the threshold.

    A run is also split where frame numbers jump (frames that did not decode: the gap rule of the decode
    report, dataset.frame_numbers.gaps_after), so no interval spans them.
    """
    frames = np.asarray(frames)
    breaks = set(gaps_after(frames).tolist())  # frames are missing after index i
    intervals = []
    for a, b in true_runs(above):
        start = a
        for i in range(a, b):
            if i in breaks:
                intervals.append((int(frames[start]), int(frames[i])))
                start = i + 1
        intervals.append((int(frames[start]), int(frames[b])))
    return intervals


def _alarms_text(frames, scores, above, threshold: float, events: Sequence[Event], rule: str) -> str:
    """alarms.txt: a commented summary with the events, then one 'frame<TAB>score' line per alarm frame."""
    lines = [
        f"# frames with anomaly score > {threshold:.6g}: {int(above.sum())} of {len(frames)}",
        f"# events (first-last frame; {rule}): "
        + (", ".join(f"{e.first_frame}-{e.last_frame}" for e in events) or "none"),
        "frame\tscore",
    ]
    lines += [f"{int(f)}\t{s:.6f}" for f, s in zip(frames[above], scores[above])]
    return "\n".join(lines) + "\n"


def _detect_html(
    n_frames: int,
    n_above: int,
    threshold: float,
    events: Sequence[Event],
    rule: str,
    caveats: Sequence[str],
    meta: Mapping,
    video: str | None,
    title: str,
) -> str:
    """index.html of an unlabelled video: event summary and caveats, score curve, heatmap video, events table,
    files, meta."""
    player = (
        ""
        if video is None
        else (
            f'<video controls preload="metadata" src="{href(video)}"></video>'
            f'<br><a href="{href(video)}">heatmap video (mp4)</a>'
        )
    )
    notes = [f"<p><b>Note</b>: {html.escape(c)}</p>" for c in caveats]
    if meta.get("interrupted"):
        notes.append(
            f"<p><b>Interrupted</b>: scoring stopped early; the {n_frames} frames scored so far are all here.</p>"
        )
    notes += [f"<p>Note: {html.escape(str(n))}</p>" for n in meta.get("notes") or []]
    rows = [
        (
            i,
            f"{e.start_s:.2f}",
            f"{e.end_s:.2f}",
            e.first_frame,
            e.last_frame,
            f"{e.duration_s:.2f}",
            f"{e.peak_score:.3f}",
            e.peak_frame,
            e.n_alarm_frames,
        )
        for i, e in enumerate(events, 1)
    ]
    body = "\n".join(
        [
            run_table(meta.get("run") or {}),
            f"<p><b>{html.escape(events_line(len(events), n_above, threshold, n_frames))}</b>; "
            f"{html.escape(rule)}.</p>",
            *notes,
            '<img src="curve.png" alt="anomaly score curve">',
            player,
            "<h2>Events</h2>",
            html_table(
                [
                    "#",
                    "start (s)",
                    "end (s)",
                    "first frame",
                    "last frame",
                    "duration (s)",
                    "peak score",
                    "peak frame",
                    "alarm frames",
                ],
                rows,
                numeric=range(9),
            )
            if rows
            else "<p>No events.</p>",
            '<p>Files: <a href="scores.csv">scores.csv</a>, <a href="alarms.txt">alarms.txt</a>, '
            '<a href="summary.json">summary.json</a></p>',
            meta_block(meta, "Run details (as in summary.json)"),
        ]
    )
    return html_page("Future frame prediction: anomaly scores" + (f" — {title}" if title else ""), body)


def write_detect_report(
    out_dir: str | os.PathLike,
    frame_indices: Sequence[int] | np.ndarray,
    psnr: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    meta: dict,
    *,
    csv_written: bool = False,
    video: str | None = None,
    score_label: str = "anomaly score",
    events: Sequence[Event] | None = None,
    fps: float = FOLDER_FPS,
    title: str = "",
    event_gap_frames: int = 0,
    min_event_frames: int = 1,
    caveats: Sequence[str] = (),
) -> Path:
    """Report for scoring an unlabelled video; returns index.html's path.

    frame_indices: (N,) int frame numbers in the source video; psnr: (N,) dB; scores: (N,) anomaly
    scores; a frame alarms when score > threshold (strictly). Writes scores.csv
    (frame,psnr,score,above_threshold; skipped when `csv_written`, i.e. the caller streamed it with
    `detect_csv_rows`), curve.png, alarms.txt, summary.json (meta + threshold + events + raw alarm intervals)
    and index.html into `out_dir` (created). video: heatmap mp4 path relative to out_dir, linked from the page.
    score_label: legend of the score curve (e.g. how the score was normalised).
    events: the events (`merge_events`) made with event_gap_frames / min_event_frames (recorded in
    summary.json); None: merged here with those settings (default 0 and 1: the plain runs of consecutive alarm
    frames). fps: frames per second behind the events' seconds and the curve's seconds axis (default 10, that of
    a folder of frames). title: names the input and mode on the curve and the page (e.g. 'clip.mp4 — whole
    mode'). caveats: sentences shown at the top of the page (`detect_caveats`) and stored in summary.json.
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
        atomic_write_text(
            out / "scores.csv", csv_text(DETECT_CSV_HEADER, detect_csv_rows(frames, psnr, scores, threshold))
        )
    elif not (out / "scores.csv").is_file():
        raise ValueError(f"csv_written=True but {out / 'scores.csv'} does not exist")
    if events is None:
        events = merge_events(frames, scores, threshold, fps, event_gap_frames, min_event_frames)
    rule = events_rule(event_gap_frames, min_event_frames, fps)
    _plot_detect_curve(out / "curve.png", frames, scores, float(threshold), score_label, events, fps, title)
    atomic_write_text(out / "alarms.txt", _alarms_text(frames, scores, above, float(threshold), events, rule))
    summary = {
        **meta,
        "threshold": float(threshold),
        "n_frames": len(frames),
        "n_above_threshold": int(above.sum()),
        "fps": float(fps),
        "event_gap_frames": int(event_gap_frames),
        "min_event_frames": int(min_event_frames),
        "n_events": len(events),
        "events": [e.as_dict() for e in events],
        "caveats": list(caveats),
        "alarm_intervals": _alarm_intervals(frames, above),
    }  # raw runs, as before events existed
    atomic_write_text(out / "summary.json", json_text(summary))
    index = out / "index.html"
    atomic_write_text(
        index, _detect_html(len(frames), int(above.sum()), float(threshold), events, rule, caveats, meta, video, title)
    )
    return index
