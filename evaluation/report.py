"""The evaluation report of a labelled (or unlabelled) test set: per-frame CSV, metrics JSON, ROC and score
curves, one HTML page.

Every file is written atomically (temp file in the same folder, then os.replace), and index.html is written
last, so a crash never leaves a page that links to missing or half-written files.
"""
from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from sklearn.metrics import auc, roc_curve

from evaluation.metrics import aligned_videos, metric_rows, video_scores
from evaluation.pages import (checked_video_links, csv_text, file_stems, href, html_page, html_table,
                              json_text, meta_block, new_figure, save_png)
from evaluation.scores import anomaly_scores, true_runs
from utils import atomic_write_text

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
    fig = new_figure((5.0, 5.0))
    ax = fig.add_subplot()
    ax.plot(fpr, tpr, lw=2, label=f"micro AUC = {auc(fpr, tpr):.4f}")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="chance")
    if eer is not None:
        ax.plot([eer], [1 - eer], "o", c="red", label=f"EER = {eer:.4f}")
    ax.set(xlabel="false positive rate (normal frames flagged)", ylabel="true positive rate (abnormal found)",
           xlim=(0, 1), ylim=(0, 1.01), title=f"Frame-level ROC, per-video min-max, sigma={sigma:g}")
    ax.legend(loc="lower right")
    save_png(fig, path)


def _plot_video_curve(path: Path, name: str, psnr: np.ndarray, labels: np.ndarray | None, frames: np.ndarray,
                      sigma: float, video_auc: float | None) -> None:
    """One video's score curve over its frame numbers, ground-truth abnormal intervals shaded (when labelled)."""
    fig = new_figure()
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
    save_png(fig, path)


def _report_html(videos, metrics: Mapping | None, meta: Mapping, stems: Mapping[str, str],
                 links: Mapping[str, str], notes: Sequence[str]) -> str:
    """index.html body: metrics with knobs (or why there are none), notes, ROC, per-video table, curves, videos."""
    per_video = (metrics or {}).get("per_video_auc", {})
    if metrics is not None:
        parts = ["<h2>Frame-level metrics</h2>",
                 html_table(["metric", "value", "protocol"], metric_rows(metrics, meta), numeric=(1,))]
    else:
        parts = ["<h2>Frame-level metrics</h2>",
                 f"<p><b>No AUC</b>: {html.escape(str(meta.get('auc_skipped', 'the test videos have no labels')))}. "
                 "Scores, curves and videos below are computed all the same.</p>"]
    parts += [f"<p>Note: {html.escape(n)}</p>" for n in notes]
    parts.append(meta_block(meta))
    if metrics is not None:
        parts.append('<h2>ROC</h2>\n<img src="roc.png" alt="micro ROC curve" width="500">')
    parts += ["<h2>Per video</h2>",
              html_table(["video", "scored frames", "abnormal", "padded AUC"],
                          [(v, len(p), "-" if lab is None else int(lab.sum()),
                            f"{per_video[v]:.4f}" if v in per_video else "-")
                           for v, (p, lab) in videos.items()], numeric=(1, 2, 3))]
    for name in videos:
        src = f"curves/{stems[name]}.png"
        parts.append(f'<figure id="{href(stems[name])}"><img src="{href(src)}" alt="scores of {html.escape(name)}">'
                     f"<figcaption>{html.escape(name)}</figcaption>")
        if name in links:
            rel = href(links[name])
            parts.append(f'<video controls preload="metadata" src="{rel}"></video>'
                         f'<br><a href="{rel}">heatmap video (mp4)</a>')
        parts.append("</figure>")
    return html_page("Future frame prediction: evaluation report", "\n".join(parts))


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
    links = checked_video_links(out, videos)
    offset, sigma = int(meta.get("dropped_frames", 4)), float((metrics or {}).get("smooth_sigma", 0.0))
    if labels_by_video is None:
        data = {k: (np.asarray(v, dtype=np.float64), None) for k, v in psnr_by_video.items() if len(v)}
    else:
        data = aligned_videos(psnr_by_video, labels_by_video)
    numbers = {k: np.asarray((frame_numbers or {}).get(k, offset + np.arange(len(p)))) for k, (p, _) in data.items()}
    atomic_write_text(out / "scores.csv", csv_text(["video", "frame", "psnr", "score", "label"],
                                                    _scores_rows(data, numbers)))
    atomic_write_text(out / "metrics.json", json_text({**meta, **(metrics or {}), "notes": list(notes)}))
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
