"""The evaluation report of a labelled (or unlabelled) test set: per-frame CSV, metrics JSON, ROC and score
curves, one HTML page.

Every file is written atomically (temp file in the same folder, then os.replace), and index.html is written
last, so a crash never leaves a page that links to missing or half-written files.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import auc, roc_curve

from evaluation.metrics import aligned_videos, reported_metrics, video_scores
from evaluation.pages import (
    checked_video_links,
    csv_text,
    file_stems,
    href,
    html_page,
    html_table,
    json_text,
    meta_block,
    new_figure,
    run_table,
    save_png,
)
from evaluation.scores import anomaly_scores, true_runs
from utils.files import atomic_write_text

# ----------------------------------------------------------------------------- labelled test set


def _scores_rows(videos: Mapping[str, tuple[np.ndarray, np.ndarray | None]], numbers: Mapping[str, np.ndarray]):
    """CSV rows video,frame,psnr,score,label (label empty when unlabelled); frame = the frame's number in its source."""
    for name, (psnr, labels) in videos.items():
        cells = [""] * len(psnr) if labels is None else [int(v) for v in labels]
        for f, p, s, lab in zip(numbers[name], psnr, anomaly_scores(psnr), cells):
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
    ax.set(
        xlabel="false positive rate (normal frames flagged)",
        ylabel="true positive rate (abnormal found)",
        xlim=(0, 1),
        ylim=(0, 1.01),
        title=f"Frame-level ROC, per-video min-max, sigma={sigma:g}",
    )
    ax.legend(loc="lower right")
    save_png(fig, path)


def _plot_video_curve(
    path: Path,
    name: str,
    psnr: np.ndarray,
    labels: np.ndarray | None,
    frames: np.ndarray,
    sigma: float,
    video_auc: float | None,
) -> None:
    """One video's score curve over its frame numbers, ground-truth abnormal intervals shaded (when labelled)."""
    fig = new_figure()
    ax = fig.add_subplot()
    for k, (start, end) in enumerate(true_runs(labels == 1) if labels is not None else []):
        ax.axvspan(
            frames[start] - 0.5,
            frames[end] + 0.5,
            color="red",
            alpha=0.2,
            label="ground truth abnormal" if k == 0 else None,
        )
    ax.plot(frames, anomaly_scores(psnr), lw=1.2, label="score = 1 - minmax(PSNR)")
    if sigma > 0:
        ax.plot(frames, video_scores(psnr, sigma), lw=1.5, label=f"smoothed, sigma={sigma:g}")
    auc_text = "" if video_auc is None else f" (padded AUC {video_auc:.3f})"
    ax.set(
        xlabel="frame number in video",
        ylabel="anomaly score",
        ylim=(-0.03, 1.03),
        xlim=(frames[0] - 0.5, frames[-1] + 0.5),
        title=f"{name}{auc_text}",
    )
    ax.legend(loc="upper left", fontsize=8)
    save_png(fig, path)


# Frame-level micro-AUC reported by the paper (Liu et al., CVPR 2018, Table 3; the official code's protocol).
PAPER_MICRO_AUC = {"ped1": 0.831, "ped2": 0.954, "avenue": 0.851, "shanghaitech": 0.728}
WORST_PER_KIND = 3  # worst false alarms and worst misses shown as images
WORST_MIN_GAP = 10  # frames between two examples of one video (not the same moment twice)


def worst_frames(
    videos, numbers: Mapping[str, np.ndarray], sigma: float, k: int = WORST_PER_KIND, min_gap: int = WORST_MIN_GAP
) -> list[dict]:
    """The k normal frames with the highest score ('false alarm') and the k abnormal frames with the lowest
    ('miss'), over all labelled videos; two examples of one video are at least `min_gap` frames apart.

    videos: {name: (psnr (N,), labels (N,) 0/1)}; numbers: {name: (N,) frame numbers}. Returns dicts
    {kind, video, frame, score} (score = the report's per-video min-max score, smoothed by `sigma`), worst first.
    """
    picked = []
    for kind, wanted, sign in (("false alarm", 0, -1.0), ("miss", 1, 1.0)):
        candidates = [
            (sign * score, name, int(frame))
            for name, (psnr, labels) in videos.items()
            for score, frame, label in zip(video_scores(psnr, sigma), numbers[name], labels)
            if label == wanted
        ]
        chosen: list[tuple] = []
        for key, name, frame in sorted(candidates):
            if all(n != name or abs(f - frame) >= min_gap for _, n, f in chosen):
                chosen.append((key, name, frame))
            if len(chosen) == k:
                break
        picked += [{"kind": kind, "video": name, "frame": frame, "score": sign * key} for key, name, frame in chosen]
    return picked


def _plot_examples(path: Path, examples: Sequence[Mapping], vmax: float) -> None:
    """One row per example: frame | prediction | error map (one colour scale for all rows)."""
    fig = new_figure((9.0, 2.6 * len(examples)))
    for row, ex in enumerate(examples):
        for col, (title, image) in enumerate(
            (("frame", ex["frame_rgb"]), ("prediction", ex["prediction_rgb"]), ("squared error", ex["error"]))
        ):
            ax = fig.add_subplot(len(examples), 3, 3 * row + col + 1)
            shown = ax.imshow(image, cmap="jet", vmin=0, vmax=vmax) if col == 2 else ax.imshow(image)
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(
                f"video {ex['video']}, frame {ex['frame']}: {ex['kind']}, score {ex['score']:.3f}"
                if col == 0
                else title,
                fontsize=8,
                loc="left" if col == 0 else "center",
            )
            if col == 2:
                fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02)
    save_png(fig, path)


def _plot_history(path: Path, history: Sequence[Mapping]) -> None:
    """Validation micro-AUC over training steps (the checkpoint's history), as training recorded it."""
    points = [(h["step"], h["val_auc"]) for h in history if h.get("val_auc") is not None]
    fig = new_figure((6.0, 3.5))
    ax = fig.add_subplot()
    ax.plot([p[0] for p in points], [p[1] for p in points], "o-", lw=1.5)
    ax.set(xlabel="training step", ylabel="validation micro-AUC (test labels)", title="Validation during training")
    ax.grid(alpha=0.3)
    save_png(fig, path)


def _metric_table(metrics: Mapping, dataset: str) -> str:
    """Metrics (evaluation.metrics.METRIC_ROWS, as the console lists them) with the paper's micro AUC beside ours
    where the paper reports one, and what each row measures."""
    paper = PAPER_MICRO_AUC.get(dataset)
    cells = [
        (row.name, f"{value:.4f}", f"{paper:.3f}" if row.key == "micro_auc" and paper is not None else "-", what)
        for row, value, what in reported_metrics(metrics)
    ]
    cells.append(("frames scored", str(metrics["n_frames"]), "-", f"{metrics['n_abnormal']} of them abnormal"))
    return html_table(["metric", "ours", "paper", "what it measures"], cells, numeric=(1, 2))


def _protocol(metrics: Mapping | None, meta: Mapping) -> str:
    """The evaluation protocol, stated once for every row of the table."""
    sigma = float((metrics or {}).get("smooth_sigma", meta.get("smooth_sigma", 0.0)))
    selected = meta.get("selected_with_test_labels")
    choices: dict[object, str] = {
        True: "<b>selected with test labels</b> (optimistic)",
        False: "not selected with test labels",
    }
    choice = choices.get(selected, "selection unknown")
    return (
        f"<p>Protocol: PSNR of each predicted frame (frames on [0, 1]), score = 1 − min-max(PSNR) within each "
        f"test video, the first {int(meta['dropped_frames'])} frames of each video not scored, "
        f"temporal smoothing sigma = {sigma:g} frames{' (none, as the paper)' if sigma == 0 else ''}, "
        f"abnormal = positive. Checkpoint {html.escape(str(meta.get('checkpoint', '?')))}: {choice}.</p>"
    )


def _examples_html(examples: Sequence[Mapping]) -> str:
    """The worst false alarms and misses, each kind one image, with a link to each video's curve."""
    parts = [
        "<h2>Worst false alarms and misses</h2>",
        "<p>Normal frames with the highest scores and abnormal frames with the lowest (each shows the "
        "frame, the generator's prediction and their squared error, on one colour scale).</p>",
    ]
    for kind, title, image in (
        ("false alarm", "False alarms", "worst_false_alarms.png"),
        ("miss", "Misses", "worst_misses.png"),
    ):
        if any(ex["kind"] == kind for ex in examples):
            parts.append(f'<h3>{title}</h3><img src="{image}" alt="worst {title.lower()}">')
    return "\n".join(parts)


@dataclass(frozen=True)
class EvalResults:
    """What evaluation measured on a test set.

    psnr / labels: video -> (N_v,) aligned arrays (first `dropped_frames` frames already removed); labels and
    metrics are None for an unlabelled test set (no AUC, no ROC). metrics: `compute_metrics` output (plus optional
    'pixel_auroc'). frame_numbers: video -> (N_v,) source frame numbers of the scored frames (default:
    dropped_frames + i).
    """

    psnr: Mapping[str, np.ndarray]
    labels: Mapping[str, np.ndarray] | None
    metrics: dict | None
    frame_numbers: Mapping[str, np.ndarray] | None = None


@dataclass(frozen=True)
class ReportPage:
    """What the report shows besides the scores.

    meta: run info (config, checkpoint, step, dropped_frames (the config's in_frames), selected_with_test_labels,
    auc_skipped when there is no AUC, ...), merged into metrics.json (metrics win on a clash). videos: video -> mp4
    path relative to the report's folder. notes: lines shown on the page and stored in metrics.json (e.g. videos
    without PSNR spread). header: {label: value} shown at the top (dataset, checkpoint, date, commit, torch, device,
    times). examples: `worst_frames` entries with their images added ('frame_rgb', 'prediction_rgb' H×W×3 uint8,
    'error' H×W float squared error). history: the checkpoint's [{'step', 'val_auc'}] validation entries.
    """

    meta: Mapping
    videos: Mapping[str, str] | None = None
    notes: Sequence[str] = ()
    header: Mapping[str, object] | None = None
    examples: Sequence[Mapping] = ()
    history: Sequence[Mapping] = ()

    @property
    def has_history(self) -> bool:
        """Whether any validation during training gave an AUC."""
        return any(h.get("val_auc") is not None for h in self.history)


def _no_auc_html(meta: Mapping) -> str:
    reason = html.escape(str(meta.get("auc_skipped", "the test videos have no labels")))
    return f"<p><b>No AUC</b>: {reason}. Scores, curves and videos below are computed all the same.</p>"


def _per_video_html(
    videos: Mapping, metrics: Mapping | None, stems: Mapping[str, str], links: Mapping[str, str]
) -> list[str]:
    """The per-video table, then each video's score curve and heatmap video."""
    per_video = (metrics or {}).get("per_video_auc", {})
    parts = [
        "<h2>Per video</h2>",
        html_table(
            ["video", "scored frames", "abnormal", "padded AUC"],
            [
                (v, len(p), "-" if lab is None else int(lab.sum()), f"{per_video[v]:.4f}" if v in per_video else "-")
                for v, (p, lab) in videos.items()
            ],
            numeric=(1, 2, 3),
        ),
    ]
    for name in videos:
        parts.append(
            f'<figure id="{href(stems[name])}"><img src="{href("curves/" + stems[name] + ".png")}" '
            f'alt="scores of {html.escape(name)}">'
        )
        if name in links:
            rel = href(links[name])
            parts.append(
                f'<video controls preload="metadata" src="{rel}"></video>'
                f'<br><a href="{rel}">heatmap video of {html.escape(name)} (mp4)</a>'
            )
        parts.append("</figure>")
    return parts


def _report_html(videos, metrics: Mapping | None, page: ReportPage, stems: Mapping[str, str], links: Mapping) -> str:
    """index.html: the run, metrics beside the paper's, protocol, notes, ROC, worst frames, history, per-video
    table, curves and videos, and the full configuration folded away."""
    meta = page.meta
    dataset = str(meta.get("dataset", ""))
    parts = [run_table(page.header or {}), "<h2>Frame-level metrics</h2>"]
    if metrics is not None:
        parts += [_metric_table(metrics, dataset), _protocol(metrics, meta)]
    else:
        parts.append(_no_auc_html(meta))
    parts += [f"<p>Note: {html.escape(n)}</p>" for n in page.notes]
    if metrics is not None:
        parts.append('<h2>ROC</h2>\n<img src="roc.png" alt="micro ROC curve" width="500">')
    if page.examples:
        parts.append(_examples_html(page.examples))
    if page.has_history:
        parts.append('<h2>Validation during training</h2>\n<img src="history.png" alt="validation AUC by step">')
    parts += _per_video_html(videos, metrics, stems, links)
    parts.append(meta_block(meta, "Configuration and run details (as in metrics.json)"))
    title = f"Evaluation: {dataset or 'test set'}, {meta.get('checkpoint', 'checkpoint')}"
    return html_page(title, "\n".join(parts))


def _plot_all(out: Path, data: Mapping, numbers: Mapping, results: EvalResults, page: ReportPage) -> dict[str, str]:
    """roc.png, curves/<video>.png, the worst-frame figures and history.png; returns {video: file stem}."""
    metrics = results.metrics or {}
    sigma = float(metrics.get("smooth_sigma", 0.0))
    if results.metrics is not None:
        _plot_roc(out / "roc.png", data, sigma, metrics.get("eer"))
    stems = file_stems(data)
    per_video = metrics.get("per_video_auc", {})
    for name, (psnr, labels) in data.items():
        _plot_video_curve(
            out / "curves" / f"{stems[name]}.png", name, psnr, labels, numbers[name], sigma, per_video.get(name)
        )
    if page.examples:
        vmax = max(float(np.percentile(ex["error"], 99.5)) for ex in page.examples) or 1e-8
        for kind, image in (("false alarm", "worst_false_alarms.png"), ("miss", "worst_misses.png")):
            chosen = [ex for ex in page.examples if ex["kind"] == kind]
            if chosen:
                _plot_examples(out / image, chosen, vmax)
    if page.has_history:
        _plot_history(out / "history.png", page.history)
    return stems


def write_report(out_dir: str | os.PathLike, results: EvalResults, page: ReportPage) -> Path:
    """Write the evaluation report of a test set into `out_dir` (created); returns index.html's path.

    Files: scores.csv (video,frame,psnr,score,label; unsmoothed paper score), metrics.json, roc.png (labelled),
    worst_false_alarms.png / worst_misses.png (with examples), history.png (with history), curves/<video>.png,
    index.html (last). For an unlabelled test set the page says why there is no AUC (meta['auc_skipped']).
    ValueError for a linked heatmap video that does not exist.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    links = checked_video_links(out, page.videos)
    offset = int(page.meta["dropped_frames"])
    data: Mapping[str, tuple[np.ndarray, np.ndarray | None]]
    if results.labels is None:
        data = {k: (np.asarray(v, dtype=np.float64), None) for k, v in results.psnr.items() if len(v)}
    else:
        data = aligned_videos(results.psnr, results.labels)
    given = results.frame_numbers or {}
    numbers = {k: np.asarray(given.get(k, offset + np.arange(len(p)))) for k, (p, _) in data.items()}
    atomic_write_text(
        out / "scores.csv", csv_text(["video", "frame", "psnr", "score", "label"], _scores_rows(data, numbers))
    )
    metrics_json = {**page.meta, **(results.metrics or {}), "notes": list(page.notes)}
    atomic_write_text(out / "metrics.json", json_text(metrics_json))
    stems = _plot_all(out, data, numbers, results, page)
    index = out / "index.html"
    atomic_write_text(index, _report_html(data, results.metrics, page, stems, links))
    return index
