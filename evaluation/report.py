"""Evaluation reports on disk: per-frame CSV, metrics JSON, ROC and score-curve figures, one HTML page.

Every file is written atomically (temp file in the same folder, then os.replace), and index.html is
written last, so a crash never leaves a page that links to missing or half-written files. Whole result
folders (eval.py, detect.py) are built in a hidden temp sibling and renamed into place (`StagedResult`).
Figures are `matplotlib.figure.Figure` objects on the Agg canvas, never registered with pyplot: no
global figure state, nothing left open after saving, safe without a display.
"""
from __future__ import annotations

import csv
import html
import io
import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Mapping, Sequence
from urllib.parse import quote

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import auc, roc_curve

from dataset.sources import gaps_after
from evaluation.metrics import aligned_videos, metric_rows, video_scores
from evaluation.scores import anomaly_scores, true_runs
from utils import FFPError, atomic_write_bytes, atomic_write_text, shared_mode

_CSS = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
        "text-align:left;vertical-align:top}td.num{text-align:right;font-family:monospace}"
        "img,video{max-width:100%}pre{background:#f4f4f4;padding:8px;overflow-x:auto}"
        "figure{margin:1.5em 0}")


# ----------------------------------------------------------------------------- small writers

def _csv_text(header: Sequence[str], rows) -> str:
    """CSV text (Unix newlines) of a header and an iterable of row sequences."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _json_safe(obj):
    """Recursively convert numpy scalars/arrays, paths and tuples to JSON types; NaN/inf become null."""
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, np.ndarray)):
        return [_json_safe(v) for v in (obj.tolist() if isinstance(obj, np.ndarray) else obj)]
    if isinstance(obj, np.generic):
        return _json_safe(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)  # Path, torch.device, ... : their text is what a reader of the JSON wants


def _json_text(obj) -> str:
    """Indented, strictly valid JSON of `obj` (after _json_safe), with a trailing newline."""
    return json.dumps(_json_safe(obj), indent=2, allow_nan=False) + "\n"


def _new_figure(size=(8.0, 3.0)) -> Figure:
    """A figure on its own Agg canvas, outside pyplot, so it needs no closing."""
    fig = Figure(figsize=size, dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save_png(fig: Figure, path: Path) -> None:
    """Render `fig` to PNG bytes in memory, then write them atomically."""
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())


def file_stems(names) -> dict[str, str]:
    """Video name -> unique, filesystem- and URL-safe file stem (no leading dot, no separators)."""
    stems: dict[str, str] = {}
    for name in names:
        stem = re.sub(r"[^A-Za-z0-9_-]", "_", str(name)) or "video"
        while stem in stems.values():
            stem += "_"
        stems[name] = stem
    return stems


# ----------------------------------------------------------------------------- result folders

def free_result_path(out_root: Path, name: str, overwrite: bool) -> Path:
    """out_root/name, or the first free numbered sibling name_2, name_3, ... unless `overwrite`."""
    base = Path(out_root) / name
    if overwrite or not base.exists():
        return base
    n = 2
    while base.with_name(f"{name}_{n}").exists():
        n += 1
    return base.with_name(f"{name}_{n}")


class StagedResult:
    """Context manager building a result folder in a hidden temp sibling, moved into place only on success.

        with StagedResult(Path("results"), "ped2_latest", overwrite=False) as stage:
            write files into stage.dir
        print(stage.path)          # results/ped2_latest (or ped2_latest_2, ...)

    On an exception the temp folder is deleted, so a crash never leaves a half-written result folder
    (a SIGKILL can leave a hidden `.<name>.tmp-*` folder, never a visible one). The final name is picked
    when the work is done, so the numbered sibling is free at that moment; with `overwrite` an existing
    folder is replaced (moved aside, the new one renamed in, the old one deleted).
    """

    def __init__(self, out_root: str | os.PathLike, name: str, overwrite: bool):
        self.out_root, self.name, self.overwrite = Path(out_root), name, overwrite
        self.dir: Path | None = None
        self.path: Path | None = None

    def __enter__(self) -> "StagedResult":
        self._made_root = not self.out_root.exists()
        try:
            self.out_root.mkdir(parents=True, exist_ok=True)
            self.dir = Path(tempfile.mkdtemp(prefix=f".{self.name}.tmp-", dir=self.out_root))
            shared_mode(self.dir, directory=True)
        except OSError as exc:
            raise FFPError(f"--out_dir {self.out_root} is not writable: {exc.strerror or exc}") from None
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            if self._made_root:   # an --out_dir this run created goes too, if nothing else is in it
                try:
                    self.out_root.rmdir()
                except OSError:
                    pass
            return
        self.path = free_result_path(self.out_root, self.name, self.overwrite)
        old = None
        if self.path.exists():  # only with overwrite: swap, so the old folder is never half-deleted
            old = Path(tempfile.mkdtemp(prefix=f".{self.name}.old-", dir=self.out_root))
            os.replace(self.path, old / self.name)
        os.replace(self.dir, self.path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


# ----------------------------------------------------------------------------- HTML

def _html_page(title: str, body: str) -> str:
    """A self-contained page: inline CSS, no scripts, no network."""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_CSS}</style></head>\n<body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")


def _html_table(header: Sequence[str], rows, numeric: Sequence[int] = ()) -> str:
    """HTML table with escaped cells; columns in `numeric` are right-aligned monospace."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td{" class=num" if i in numeric else ""}>{html.escape(str(c))}</td>'
                         for i, c in enumerate(row)) + "</tr>\n" for row in rows)
    return f"<table><tr>{head}</tr>\n{body}</table>"


def _href(rel: str) -> str:
    """Percent-encode a relative path for src/href (keeps '/'), escaped for an attribute."""
    return html.escape(quote(rel), quote=True)


def _meta_block(meta: Mapping) -> str:
    """The run's meta (config, checkpoint, knobs) as pretty JSON."""
    return f"<h2>Run</h2>\n<pre>{html.escape(_json_text(meta))}</pre>"


# ----------------------------------------------------------------------------- labelled test set

def _scores_rows(videos: Mapping[str, tuple[np.ndarray, np.ndarray | None]], numbers: Mapping[str, np.ndarray]):
    """CSV rows video,frame,psnr,score,label (label empty when unlabelled); frame = the frame's number in its source."""
    for name, (psnr, labels) in videos.items():
        labels = [""] * len(psnr) if labels is None else [int(v) for v in labels]
        for f, p, s, lab in zip(numbers[name], psnr, anomaly_scores(psnr), labels):
            yield name, int(f), f"{p:.6f}", f"{s:.6f}", lab


def _plot_roc(path: Path, videos, sigma: float, eer: float | None) -> None:
    """Micro ROC (all videos concatenated, per-video min-max scores) with its AUC in the legend."""
    labels = np.concatenate([lab for _, lab in videos.values()])
    scores = np.concatenate([video_scores(p, sigma) for p, _ in videos.values()])
    fpr, tpr, _ = roc_curve(labels, scores)
    fig = _new_figure((5.0, 5.0))
    ax = fig.add_subplot()
    ax.plot(fpr, tpr, lw=2, label=f"micro AUC = {auc(fpr, tpr):.4f}")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="chance")
    if eer is not None:
        ax.plot([eer], [1 - eer], "o", c="red", label=f"EER = {eer:.4f}")
    ax.set(xlabel="false positive rate (normal frames flagged)", ylabel="true positive rate (abnormal found)",
           xlim=(0, 1), ylim=(0, 1.01), title=f"Frame-level ROC, per-video min-max, sigma={sigma:g}")
    ax.legend(loc="lower right")
    _save_png(fig, path)


def _plot_video_curve(path: Path, name: str, psnr: np.ndarray, labels: np.ndarray | None, frames: np.ndarray,
                      sigma: float, video_auc: float | None) -> None:
    """One video's score curve over its frame numbers, ground-truth abnormal intervals shaded (when labelled)."""
    fig = _new_figure()
    ax = fig.add_subplot()
    for k, (start, end) in enumerate(true_runs(labels == 1) if labels is not None else []):
        ax.axvspan(frames[start] - 0.5, frames[end] + 0.5, color="red", alpha=0.2,
                   label="ground truth abnormal" if k == 0 else None)
    ax.plot(frames, anomaly_scores(psnr), lw=1.2, label="score = 1 - minmax(PSNR)")
    if sigma > 0:
        ax.plot(frames, video_scores(psnr, sigma), lw=1.5, label=f"smoothed, sigma={sigma:g}")
    auc_text = "" if video_auc is None else f" (padded AUC {video_auc:.3f})"
    ax.set(xlabel="frame number in video", ylabel="anomaly score", ylim=(-0.03, 1.03),
           xlim=(frames[0] - 0.5, frames[-1] + 0.5), title=f"{name}{auc_text}")
    ax.legend(loc="upper left", fontsize=8)
    _save_png(fig, path)


def _checked_video_links(out: Path, videos: Mapping[str, str] | None) -> dict[str, str]:
    """Heatmap video links must be relative paths that already exist under the report folder."""
    videos = dict(videos or {})
    for name, rel in videos.items():
        if Path(rel).is_absolute() or ".." in Path(rel).parts or not (out / rel).is_file():
            raise ValueError(f"videos[{name!r}] = {rel!r}: expected an existing file relative to {out} "
                             "(write the heatmap videos before the report)")
    return videos


def _report_html(videos, metrics: Mapping | None, meta: Mapping, stems: Mapping[str, str],
                 links: Mapping[str, str], notes: Sequence[str]) -> str:
    """index.html body: metrics with knobs (or why there are none), notes, ROC, per-video table, curves, videos."""
    per_video = (metrics or {}).get("per_video_auc", {})
    if metrics is not None:
        parts = ["<h2>Frame-level metrics</h2>",
                 _html_table(["metric", "value", "protocol"], metric_rows(metrics, meta), numeric=(1,))]
    else:
        parts = ["<h2>Frame-level metrics</h2>",
                 f"<p><b>No AUC</b>: {html.escape(str(meta.get('auc_skipped', 'the test videos have no labels')))}. "
                 "Scores, curves and videos below are computed all the same.</p>"]
    parts += [f"<p>Note: {html.escape(n)}</p>" for n in notes]
    parts.append(_meta_block(meta))
    if metrics is not None:
        parts.append('<h2>ROC</h2>\n<img src="roc.png" alt="micro ROC curve" width="500">')
    parts += ["<h2>Per video</h2>",
              _html_table(["video", "scored frames", "abnormal", "padded AUC"],
                          [(v, len(p), "-" if lab is None else int(lab.sum()),
                            f"{per_video[v]:.4f}" if v in per_video else "-")
                           for v, (p, lab) in videos.items()], numeric=(1, 2, 3))]
    for name in videos:
        src = f"curves/{stems[name]}.png"
        parts.append(f'<figure id="{_href(stems[name])}"><img src="{_href(src)}" alt="scores of {html.escape(name)}">'
                     f"<figcaption>{html.escape(name)}</figcaption>")
        if name in links:
            rel = _href(links[name])
            parts.append(f'<video controls preload="metadata" src="{rel}"></video>'
                         f'<br><a href="{rel}">heatmap video (mp4)</a>')
        parts.append("</figure>")
    return _html_page("Future frame prediction: evaluation report", "\n".join(parts))


def write_report(out_dir: str | os.PathLike, psnr_by_video: dict[str, np.ndarray],
                 labels_by_video: dict[str, np.ndarray] | None, metrics: dict | None, meta: dict,
                 videos: dict[str, str] | None = None, frame_numbers: dict[str, np.ndarray] | None = None,
                 notes: Sequence[str] = ()) -> Path:
    """Write the evaluation report of a test set into `out_dir` (created); returns index.html's path.

    psnr_by_video / labels_by_video: video -> (N_v,) aligned arrays (first `dropped_frames` frames already
    removed); labels_by_video and metrics are None for an unlabelled test set (no AUC, no ROC; the page
    says why, from meta['auc_skipped']). metrics: `compute_metrics` output (plus optional 'pixel_auroc');
    meta: run info (config, checkpoint, step, dropped_frames (default 4), selected_with_test_labels, ...),
    merged into metrics.json (metrics win on a clash). videos: video -> mp4 path relative to out_dir.
    frame_numbers: video -> (N_v,) source frame numbers of the scored frames (default: dropped_frames + i).
    notes: lines shown on the page and stored in metrics.json (e.g. videos without PSNR spread).
    Files: scores.csv (video,frame,psnr,score,label; unsmoothed paper score), metrics.json, roc.png (labelled),
    curves/<video>.png, index.html.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    links = _checked_video_links(out, videos)
    offset, sigma = int(meta.get("dropped_frames", 4)), float((metrics or {}).get("smooth_sigma", 0.0))
    if labels_by_video is None:
        data = {k: (np.asarray(v, dtype=np.float64), None) for k, v in psnr_by_video.items() if len(v)}
    else:
        data = aligned_videos(psnr_by_video, labels_by_video)
    numbers = {k: np.asarray((frame_numbers or {}).get(k, offset + np.arange(len(p)))) for k, (p, _) in data.items()}
    atomic_write_text(out / "scores.csv", _csv_text(["video", "frame", "psnr", "score", "label"],
                                                    _scores_rows(data, numbers)))
    atomic_write_text(out / "metrics.json", _json_text({**meta, **(metrics or {}), "notes": list(notes)}))
    if metrics is not None:
        _plot_roc(out / "roc.png", data, sigma, metrics.get("eer"))
    stems = file_stems(data)
    per_video = (metrics or {}).get("per_video_auc", {})
    for name, (psnr, labels) in data.items():
        _plot_video_curve(out / "curves" / f"{stems[name]}.png", name, psnr, labels, numbers[name], sigma,
                          per_video.get(name))
    index = out / "index.html"
    atomic_write_text(index, _report_html(data, metrics, meta, stems, links, notes))
    return index


# ----------------------------------------------------------------------------- unlabelled video

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
    fig = _new_figure()
    ax = fig.add_subplot()
    ax.plot(frames, scores, lw=1.2, label=score_label)
    ax.axhline(threshold, color="red", ls="--", lw=1, label=f"threshold {threshold:.3g}")
    if above.any():
        ax.plot(frames[above], scores[above], "r.", ms=4, label=f"{int(above.sum())} frames above")
    ax.set(xlabel="frame index", ylabel="anomaly score", title="Anomaly score per frame")
    ax.legend(loc="best", fontsize=8)  # alarms usually sit mid-video; let matplotlib avoid covering them
    _save_png(fig, path)


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
    player = "" if video is None else (f'<video controls preload="metadata" src="{_href(video)}"></video>'
                                       f'<br><a href="{_href(video)}">heatmap video (mp4)</a>')
    notes = [f"<p><b>Interrupted</b>: scoring stopped early; the {n_frames} frames scored so far are all here.</p>"] \
        if meta.get("interrupted") else []
    notes += [f"<p>Note: {html.escape(str(n))}</p>" for n in meta.get("notes") or []]
    body = "\n".join([
        f"<p>{n_above} of {n_frames} scored frames have anomaly score &gt; {threshold:.4g}.</p>", *notes,
        '<img src="curve.png" alt="anomaly score curve">', player,
        "<h2>Alarm intervals</h2>",
        _html_table(["first frame", "last frame", "span (frames)"], [(a, b, b - a + 1) for a, b in intervals],
                    numeric=(0, 1, 2)),
        '<p>Files: <a href="scores.csv">scores.csv</a>, <a href="alarms.txt">alarms.txt</a>, '
        '<a href="summary.json">summary.json</a></p>',
        _meta_block(meta)])
    return _html_page("Future frame prediction: anomaly scores", body)


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
        _checked_video_links(out, {"heatmap": video})
    above = scores > threshold
    if not csv_written:
        atomic_write_text(out / "scores.csv",
                          _csv_text(DETECT_CSV_HEADER, detect_csv_rows(frames, psnr, scores, threshold)))
    elif not (out / "scores.csv").is_file():
        raise ValueError(f"csv_written=True but {out / 'scores.csv'} does not exist")
    _plot_detect_curve(out / "curve.png", frames, scores, float(threshold), score_label)
    atomic_write_text(out / "alarms.txt", _alarms_text(frames, scores, above, float(threshold)))
    intervals = _alarm_intervals(frames, above)
    summary = {**meta, "threshold": float(threshold), "n_frames": len(frames),
               "n_above_threshold": int(above.sum()), "alarm_intervals": intervals}
    atomic_write_text(out / "summary.json", _json_text(summary))
    index = out / "index.html"
    atomic_write_text(index, _detect_html(len(frames), int(above.sum()), float(threshold), intervals, meta,
                                          video))
    return index
