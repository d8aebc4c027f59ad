"""Frame- and pixel-level metrics of the paper's protocol, plus the console table that reports them.

Every frame-level number is computed on arrays already aligned by the caller: psnr[i] and labels[i]
belong to frame i + in_frames of their video (the first in_frames frames have no prediction and are dropped from
both).
Abnormal (label 1) is the positive class throughout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from errors import FFPError
from evaluation.scores import anomaly_scores

NORMALISATION = "per-video min-max"
PAD_TRICK = (
    "each video padded with one normal frame scored 0 (prepended) and one abnormal frame "
    "scored 1 (appended), so all-normal/all-abnormal videos have a defined AUC"
)


def smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Temporal Gaussian smoothing of one video's per-frame values (float64, same shape).

    sigma is in frames; sigma <= 0 returns the values unchanged. mode='nearest' repeats the edge
    frames so the first and last frames are not pulled towards zero.
    """
    x = np.asarray(x, dtype=np.float64)
    if sigma <= 0:
        return x
    return gaussian_filter1d(x, sigma=sigma, mode="nearest")


def video_scores(psnr: np.ndarray, smooth_sigma: float = 0.0) -> np.ndarray:
    """Frame scores of one video as used for the headline AUC: smooth(1 - minmax(PSNR)), float64 in [0, 1].

    Smoothing comes after the per-video normalisation, as in the published evaluation scripts.
    """
    return smooth(anomaly_scores(psnr), smooth_sigma)


def padded_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC-AUC of one video with the pad trick: prepend (label 0, score 0), append (label 1, score 1).

    labels: (N,) 0/1; scores: (N,) in [0, 1]. The pads make both classes present, so a video that is
    all normal or all abnormal still gets a defined (if optimistic) AUC in [0, 1].
    """
    padded_labels = np.concatenate([[0], np.asarray(labels, dtype=np.int64), [1]])
    padded_scores = np.concatenate([[0.0], np.asarray(scores, dtype=np.float64), [1.0]])
    return float(roc_auc_score(padded_labels, padded_scores))


def equal_error_rate(labels: np.ndarray, scores: np.ndarray) -> float:
    """EER: the false-positive rate where FPR = 1 - TPR on the ROC, linearly interpolated between points.

    labels: (N,) 0/1 with both classes present; scores: (N,) float, higher = more abnormal.
    Returns a float in [0, 1].
    """
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    # gap = FPR - FNR rises monotonically from -1 (threshold above every score) to +1 (below every score).
    gap = fpr - (1.0 - tpr)
    i = int(np.argmax(gap >= 0))
    if gap[i] == 0 or i == 0:
        return float(fpr[i])
    # Both FPR and FNR are linear along the ROC segment, so they meet where the gap crosses zero.
    t = -gap[i - 1] / (gap[i] - gap[i - 1])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def _validate_video(name: str, psnr: np.ndarray, labels: np.ndarray) -> None:
    """Raise FFPError when one video's PSNR and labels cannot be scored together."""
    if psnr.ndim != 1 or labels.ndim != 1:
        raise FFPError(
            f"video {name!r}: psnr and labels must be 1-D per-frame arrays, got shapes {psnr.shape} and {labels.shape}"
        )
    if len(psnr) != len(labels):
        raise FFPError(
            f"video {name!r}: {len(psnr)} PSNR values but {len(labels)} labels; both must cover "
            "the same frames (each video's frames without a prediction, its first in_frames, dropped from both)"
        )
    if not np.isin(labels, (0, 1)).all():
        bad = np.unique(labels[~np.isin(labels, (0, 1))])[:5]
        raise FFPError(f"video {name!r}: labels must be 0 (normal) or 1 (abnormal), found {bad.tolist()}")
    if not np.isfinite(psnr).all():
        raise FFPError(f"video {name!r}: PSNR contains NaN/inf (did the model output NaN?)")


def aligned_videos(
    psnr_by_video: Mapping[str, np.ndarray], labels_by_video: Mapping[str, np.ndarray]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Validate both dicts (FFPError on bad input) and return {video: (psnr float64, labels int64)}.

    Videos with no scored frames are left out; FFPError when none is left.
    """
    if set(psnr_by_video) != set(labels_by_video):
        missing = sorted(set(psnr_by_video) ^ set(labels_by_video))
        raise FFPError(f"videos with PSNR and videos with labels differ: {missing[:10]} appear in only one")
    videos = {}
    for name in psnr_by_video:
        psnr = np.asarray(psnr_by_video[name], dtype=np.float64)
        labels = np.asarray(labels_by_video[name])
        _validate_video(name, psnr, labels)
        if len(psnr):
            videos[name] = (psnr, labels.astype(np.int64))
    if not videos:
        raise FFPError("no scored frames: every test video is empty after dropping the frames without a prediction")
    return videos


def compute_metrics(
    psnr_by_video: dict[str, np.ndarray], labels_by_video: dict[str, np.ndarray], smooth_sigma: float = 0.0
) -> dict:
    """Frame-level metrics of the paper's protocol over all test videos.

    psnr_by_video: video -> (N_v,) PSNR in dB; labels_by_video: video -> (N_v,) 0/1 (1 = abnormal),
    aligned frame by frame. smooth_sigma (frames) > 0 smooths each video's scores and raw -PSNR
    before concatenation. Videos with no frames are skipped. Returns plain Python types:
    micro_auc, macro_auc, eer, ap, raw_psnr_micro_auc (floats in [0, 1]), n_frames, n_abnormal (ints),
    per_video_auc {video: padded AUC}, and the knobs smooth_sigma, normalisation, macro_pad_trick.
    Raises FFPError for mismatched lengths, non-0/1 labels, no frames, or a single label class.
    """
    videos = aligned_videos(psnr_by_video, labels_by_video)
    labels = np.concatenate([lab for _, lab in videos.values()])
    if labels.min() == labels.max():
        only = "abnormal" if labels[0] else "normal"
        raise FFPError(
            f"all {len(labels)} test frames are labelled {only}: frame-level AUC is undefined "
            "(check the label file / dataset split)"
        )
    scores_by_video = {v: video_scores(p, smooth_sigma) for v, (p, _) in videos.items()}
    scores = np.concatenate(list(scores_by_video.values()))
    raw = np.concatenate([smooth(-p, smooth_sigma) for p, _ in videos.values()])
    per_video = {v: padded_auc(videos[v][1], s) for v, s in scores_by_video.items()}
    return {
        "micro_auc": float(roc_auc_score(labels, scores)),
        "macro_auc": float(np.mean(list(per_video.values()))),
        "eer": equal_error_rate(labels, scores),
        "ap": float(average_precision_score(labels, scores)),
        "raw_psnr_micro_auc": float(roc_auc_score(labels, raw)),
        "n_frames": int(len(labels)),
        "n_abnormal": int(labels.sum()),
        "per_video_auc": per_video,
        "smooth_sigma": float(smooth_sigma),
        "normalisation": NORMALISATION,
        "macro_pad_trick": PAD_TRICK,
    }


class _PixelSampler:
    """Uniform random subsample (without replacement) of a pixel stream in bounded memory.

    Bottom-k sampling: every pixel gets a uniform random key and the k pixels with the smallest keys
    are kept, which is a uniform sample of size k no matter how long the stream is.
    """

    def __init__(self, k: int, seed: int):
        self.k, self.rng = k, np.random.default_rng(seed)
        self.keys = np.empty(0)
        self.values = np.empty(0, dtype=np.float32)
        self.labels = np.empty(0, dtype=bool)

    def add(self, values: np.ndarray, labels: np.ndarray) -> None:
        """Offer a flat batch of pixel values and their boolean labels to the sample."""
        keys = self.rng.random(values.size)
        if len(self.keys) >= self.k:
            # Pixels whose key exceeds the current k-th smallest can never enter the sample.
            keep = keys < self.keys.max()
            keys, values, labels = keys[keep], values[keep], labels[keep]
        self.keys = np.concatenate([self.keys, keys])
        self.values = np.concatenate([self.values, values])
        self.labels = np.concatenate([self.labels, labels])
        if len(self.keys) > 2 * self.k:  # amortise the partition over several frames
            self._trim()

    def _trim(self) -> None:
        """Keep only the k smallest keys."""
        if len(self.keys) > self.k:
            idx = np.argpartition(self.keys, self.k - 1)[: self.k]
            self.keys, self.values, self.labels = self.keys[idx], self.values[idx], self.labels[idx]

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(values float32, labels bool) of the final sample, at most k of each."""
        self._trim()
        return self.values, self.labels


class PixelAUROC:
    """Push-style pixel-level ROC-AUC: feed error maps and masks batch by batch, read the AUC at the end.

    Memory stays bounded however many frames are added: a seeded uniform subsample of at most
    `max_pixels` pixels is kept (see `_PixelSampler`). Used by `pixel_auroc` and by eval.py, which adds
    each batch's error maps as they are predicted instead of keeping the dataset's maps.
    """

    def __init__(self, max_pixels: int = 2_000_000, seed: int = 0):
        self.max_pixels, self.seed = int(max_pixels), int(seed)
        self._sampler = _PixelSampler(self.max_pixels, self.seed)
        self.n_frames = 0
        self.n_pixels = 0

    def add(self, errors: np.ndarray, masks: np.ndarray) -> None:
        """errors: (H, W) or (B, H, W) float, higher = more anomalous; masks: same shape, > 0.5 = abnormal.

        FFPError when the shapes differ (the masks must already be resized to the error-map size).
        """
        errors, masks = np.asarray(errors, dtype=np.float32), np.asarray(masks)
        if errors.shape != masks.shape:
            raise FFPError(
                f"pixel AUROC frame {self.n_frames}: error map {errors.shape} and mask {masks.shape} "
                "differ (resize masks to the error-map size with nearest-neighbour)"
            )
        self._sampler.add(errors.ravel(), masks.ravel() > 0.5)
        self.n_frames += 1 if errors.ndim == 2 else errors.shape[0]
        self.n_pixels += errors.size

    def result(self) -> float:
        """ROC-AUC in [0, 1] of the sampled pixels; FFPError when one class is absent."""
        values, labels = self._sampler.result()
        if labels.size == 0 or labels.all() or not labels.any():
            raise FFPError("pixel AUROC: the masks need both abnormal and normal pixels; AUC is undefined")
        return float(roc_auc_score(labels, values))

    @property
    def n_sampled(self) -> int:
        """How many pixels the AUC is computed on (min(max_pixels, n_pixels))."""
        return min(self.max_pixels, self.n_pixels)


def _yes_no(flag) -> str:
    """Render the selected-with-test-labels knob; unknown is shown as such rather than guessed."""
    return {True: "YES (optimistic)", False: "no"}.get(flag, "unknown")


@dataclass(frozen=True)
class MetricRow:
    """One reported metric: its key in `compute_metrics`' dict, its name, what it measures, and whether it is computed
    on the normalised score (else on raw values: -PSNR, per-pixel errors)."""

    key: str
    name: str
    what: str
    normalised: bool = True


# The metrics eval.py reports, in order: the console table and the report's page both list these rows.
METRIC_ROWS = (
    MetricRow("micro_auc", "micro AUC", "all videos concatenated"),
    MetricRow("macro_auc", "macro AUC", f"mean per-video AUC; pad trick: {PAD_TRICK}"),
    MetricRow("eer", "EER", "on micro ROC"),
    MetricRow("ap", "AP", "abnormal positive"),
    MetricRow("raw_psnr_micro_auc", "raw-PSNR micro AUC", "score=-PSNR", normalised=False),
    MetricRow("pixel_auroc", "pixel AUROC", "per-pixel squared error vs masks", normalised=False),
)


def reported_metrics(metrics: Mapping) -> list[tuple[MetricRow, float, str]]:
    """(row, value, what it measures) of each METRIC_ROWS entry `metrics` holds (pixel AUROC with its sampling)."""
    rows = []
    for row in METRIC_ROWS:
        if metrics.get(row.key) is None:
            continue
        what = row.what
        if row.key == "pixel_auroc":
            what += f", {metrics.get('pixel_auroc_sampling', 'pixels subsampled')}"
        rows.append((row, float(metrics[row.key]), what))
    return rows


def metric_rows(metrics: Mapping, knobs: Mapping) -> list[tuple[str, str, str]]:
    """(name, value, what it measures and the protocol knobs) rows of the console table.

    metrics: a `compute_metrics` dict (optionally with 'pixel_auroc'); knobs: 'checkpoint',
    'selected_with_test_labels', 'dropped_frames' (the config's in_frames). Every AUC-type row carries its knobs.
    """
    base = (
        f"dropped={knobs['dropped_frames']}/video, ckpt={knobs.get('checkpoint', '?')}, "
        f"selected_with_test_labels={_yes_no(knobs.get('selected_with_test_labels'))}"
    )
    sigma = f"sigma={metrics.get('smooth_sigma', 0.0):g}"
    norm = f"norm={metrics.get('normalisation', NORMALISATION)}, {sigma}"
    raw = {"raw_psnr_micro_auc": f"norm=none, {sigma}", "pixel_auroc": "norm=none, sigma=0"}
    rows = [
        (row.name, f"{value:.4f}", f"{what}{';' if row.key == 'macro_auc' else ','} "
         f"{norm if row.normalised else raw[row.key]}, {base}")
        for row, value, what in reported_metrics(metrics)
    ]  # fmt: skip
    frames = f"{metrics['n_abnormal']} abnormal; after dropping {knobs['dropped_frames']}/video"
    return [*rows, ("frames", str(metrics["n_frames"]), frames)]


def format_metrics_table(metrics: dict, knobs: dict) -> str:
    """Console table of `compute_metrics` output; every AUC line ends with its protocol knobs.

    knobs: e.g. {'checkpoint': 'ped2_latest.pth', 'selected_with_test_labels': False, 'dropped_frames': 4}.
    Returns a multi-line string without a trailing newline.
    """
    rows = metric_rows(metrics, knobs)
    name_w = max(len(r[0]) for r in rows)
    value_w = max(len(r[1]) for r in rows)
    lines = ["Frame-level anomaly detection (abnormal = positive class)"]
    lines += [f"  {name:<{name_w}}  {value:>{value_w}}  [{knob}]" for name, value, knob in rows]
    return "\n".join(lines)


def inverted_labels_note(auc: float | None, what: str, source: str) -> str | None:
    """A note when an AUC is below 0.5 (worse than chance): the labels of `source` may be inverted (1 = normal
    instead of 1 = abnormal). `what` names the AUC ('frame-level micro-AUC'); None for auc None or >= 0.5."""
    if auc is None or not auc < 0.5:
        return None
    return (
        f"{what} {auc:.4f} is below 0.5 (worse than chance): the labels ({source or 'unknown source'}) may be "
        f"inverted, 1 = normal instead of 1 = abnormal; check them (this code reads 1 as abnormal)"
    )
