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
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class ScoredFrames:
    """The scored frames of an unlabelled video: frames (N,) int frame numbers in the source video, psnr (N,) dB,
    scores (N,) anomaly scores; a frame alarms when its score > threshold (strictly)."""

    frames: np.ndarray
    psnr: np.ndarray
    scores: np.ndarray
    threshold: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "frames", np.asarray(self.frames, dtype=np.int64))
        object.__setattr__(self, "psnr", np.asarray(self.psnr, dtype=np.float64))
        object.__setattr__(self, "scores", np.asarray(self.scores, dtype=np.float64))
        object.__setattr__(self, "threshold", float(self.threshold))
        n = len(self.frames)
        if not n == len(self.psnr) == len(self.scores) or n == 0:
            raise ValueError(
                f"need equal, non-zero lengths: {n} frames, {len(self.psnr)} PSNR, {len(self.scores)} scores"
            )

    @property
    def above(self) -> np.ndarray:
        """(N,) bool: the alarm frames."""
        return self.scores > self.threshold


@dataclass(frozen=True)
class DetectPage:
    """What the report says besides the scores.

    meta: the run's facts (stored in summary.json, shown on the page). csv_written: scores.csv was streamed by the
    caller (`detect_csv_rows`), so it is not written again. video: heatmap mp4 path relative to the report's
    folder, linked from the page. score_label: legend of the score curve (e.g. how the score was normalised).
    events: the events (`merge_events`) made with event_gap_frames / min_event_frames (recorded in summary.json);
    None: merged here with those settings (default 0 and 1: the plain runs of consecutive alarm frames). fps:
    frames per second behind the events' seconds and the curve's seconds axis (default 10, that of a folder of
    frames). title: names the input and mode on the curve and the page (e.g. 'clip.mp4 — whole mode'). caveats:
    sentences shown at the top of the page (`detect_caveats`) and stored in summary.json.
    """

    meta: Mapping = field(default_factory=dict)
    csv_written: bool = False
    video: str | None = None
    score_label: str = "anomaly score"
    events: Sequence[Event] | None = None
    fps: float = FOLDER_FPS
    title: str = ""
    event_gap_frames: int = 0
    min_event_frames: int = 1
    caveats: Sequence[str] = ()

    @property
    def rule(self) -> str:
        """How events were made, in words (`events_rule`)."""
        return events_rule(self.event_gap_frames, self.min_event_frames, self.fps)


def _plot_detect_curve(path: Path, scored: ScoredFrames, page: DetectPage, events: Sequence[Event]) -> None:
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
    threshold, fps = scored.threshold, page.fps
    ax.axhline(threshold, color="red", ls="--", lw=1, zorder=2, label=f"threshold {threshold:.3g}")
    ax.plot(scored.frames, scored.scores, lw=1.2, color="tab:blue", zorder=3, label=page.score_label)
    ax.set(xlabel="frame number", ylabel="anomaly score", title=page.title or "Anomaly score per frame")

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


def _alarms_text(scored: ScoredFrames, events: Sequence[Event], rule: str) -> str:
    """alarms.txt: a commented summary with the events, then one 'frame<TAB>score' line per alarm frame."""
    above = scored.above
    lines = [
        f"# frames with anomaly score > {scored.threshold:.6g}: {int(above.sum())} of {len(scored.frames)}",
        f"# events (first-last frame; {rule}): "
        + (", ".join(f"{e.first_frame}-{e.last_frame}" for e in events) or "none"),
        "frame\tscore",
    ]
    lines += [f"{int(f)}\t{s:.6f}" for f, s in zip(scored.frames[above], scored.scores[above])]
    return "\n".join(lines) + "\n"


_EVENT_COLUMNS = (
    "#",
    "start (s)",
    "end (s)",
    "first frame",
    "last frame",
    "duration (s)",
    "peak score",
    "peak frame",
    "alarm frames",
)


def _event_rows(events: Sequence[Event]) -> list[tuple]:
    """One row of the page's events table per event (_EVENT_COLUMNS)."""
    return [
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


def _page_notes(page: DetectPage, n_frames: int) -> list[str]:
    """The page's notes as HTML paragraphs: the caveats, an interruption, the run's own notes."""
    notes = [f"<p><b>Note</b>: {html.escape(c)}</p>" for c in page.caveats]
    if page.meta.get("interrupted"):
        notes.append(
            f"<p><b>Interrupted</b>: scoring stopped early; the {n_frames} frames scored so far are all here.</p>"
        )
    return notes + [f"<p>Note: {html.escape(str(n))}</p>" for n in page.meta.get("notes") or []]


def _detect_html(scored: ScoredFrames, page: DetectPage, events: Sequence[Event]) -> str:
    """index.html of an unlabelled video: event summary and caveats, score curve, heatmap video, events table,
    files, meta."""
    video, n_frames = page.video, len(scored.frames)
    player = (
        ""
        if video is None
        else (
            f'<video controls preload="metadata" src="{href(video)}"></video>'
            f'<br><a href="{href(video)}">heatmap video (mp4)</a>'
        )
    )
    rows = _event_rows(events)
    summary = events_line(len(events), int(scored.above.sum()), scored.threshold, n_frames)
    body = "\n".join(
        [
            run_table(page.meta.get("run") or {}),
            f"<p><b>{html.escape(summary)}</b>; {html.escape(page.rule)}.</p>",
            *_page_notes(page, n_frames),
            '<img src="curve.png" alt="anomaly score curve">',
            player,
            "<h2>Events</h2>",
            html_table(list(_EVENT_COLUMNS), rows, numeric=range(9)) if rows else "<p>No events.</p>",
            '<p>Files: <a href="scores.csv">scores.csv</a>, <a href="alarms.txt">alarms.txt</a>, '
            '<a href="summary.json">summary.json</a></p>',
            meta_block(page.meta, "Run details (as in summary.json)"),
        ]
    )
    return html_page("Future frame prediction: anomaly scores" + (f" — {page.title}" if page.title else ""), body)


def _summary(scored: ScoredFrames, page: DetectPage, events: Sequence[Event]) -> dict:
    """summary.json: the run's facts, the threshold, the events, and the raw alarm intervals."""
    return {
        **page.meta,
        "threshold": scored.threshold,
        "n_frames": len(scored.frames),
        "n_above_threshold": int(scored.above.sum()),
        "fps": float(page.fps),
        "event_gap_frames": int(page.event_gap_frames),
        "min_event_frames": int(page.min_event_frames),
        "n_events": len(events),
        "events": [e.as_dict() for e in events],
        "caveats": list(page.caveats),
        "alarm_intervals": _alarm_intervals(scored.frames, scored.above),
    }  # raw runs, as before events existed


def write_detect_report(out_dir: str | os.PathLike, scored: ScoredFrames, page: DetectPage) -> Path:
    """Report for scoring an unlabelled video into `out_dir` (created); returns index.html's path.

    Writes scores.csv (frame,psnr,score,above_threshold; skipped when `page.csv_written`), curve.png, alarms.txt,
    summary.json (meta + threshold + events + raw alarm intervals) and index.html, each atomically, index.html
    last. ValueError for a linked heatmap video that does not exist, or csv_written without scores.csv.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if page.video is not None:
        checked_video_links(out, {"heatmap": page.video})
    if not page.csv_written:
        rows = detect_csv_rows(scored.frames, scored.psnr, scored.scores, scored.threshold)
        atomic_write_text(out / "scores.csv", csv_text(DETECT_CSV_HEADER, rows))
    elif not (out / "scores.csv").is_file():
        raise ValueError(f"csv_written=True but {out / 'scores.csv'} does not exist")
    events = page.events
    if events is None:
        events = merge_events(
            scored.frames, scored.scores, scored.threshold, page.fps, page.event_gap_frames, page.min_event_frames
        )
    _plot_detect_curve(out / "curve.png", scored, page, events)
    atomic_write_text(out / "alarms.txt", _alarms_text(scored, events, page.rule))
    atomic_write_text(out / "summary.json", json_text(_summary(scored, page, events)))
    index = out / "index.html"
    atomic_write_text(index, _detect_html(scored, page, events))
    return index
