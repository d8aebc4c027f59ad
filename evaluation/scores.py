"""Per-frame scores of the paper's protocol: PSNR of a predicted frame, per-video min-max, anomaly score.

Frames enter as generator outputs in [-1, 1]; every quantity here is defined on frames mapped to [0, 1],
because that is the range the paper's PSNR = 10*log10(1/MSE) assumes (peak value 1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch  # annotations only: the NumPy half of this module serves detect.py without torch (ONNX Runtime)

# Identical frames would give MSE 0 and PSNR +inf, which breaks min-max normalisation and AUC.
# Clamping MSE at 1e-10 caps PSNR at 100 dB: large, finite, and above any real prediction.
MSE_EPS = 1e-10


def _to_unit_range(x: torch.Tensor) -> torch.Tensor:
    """Map [-1, 1] to [0, 1] in float32 (halves every pixel difference, so MSE shrinks by 4)."""
    return (x.float() + 1.0) * 0.5


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    """Shapes must agree and be B x C x H x W; a mismatch is a programming error, not a user error."""
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must be equal B x C x H x W")


def psnr_per_frame(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of each predicted frame against its real frame.

    pred, target: B x C x H x W tensors in [-1, 1] (any float dtype, any device). Both are mapped to
    [0, 1]; MSE is the mean over all C*H*W values of a frame, clamped at MSE_EPS (1e-10) so identical
    frames give a finite 100 dB. Returns a float32 tensor of shape (B,) on the input device.
    Pure tensor ops: it never synchronises with the host, so it can run inside a CUDA pipeline.
    """
    _check_pair(pred, target)
    diff = _to_unit_range(pred) - _to_unit_range(target)
    mse = diff.pow(2).flatten(1).mean(dim=1).clamp_min(MSE_EPS)
    return 10.0 * (1.0 / mse).log10()


def error_map(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel squared error on [0, 1] frames, averaged over channels.

    pred, target: B x C x H x W in [-1, 1]. Returns float32 B x H x W with values in [0, 1]
    (its spatial mean is the frame's MSE before clamping).
    """
    _check_pair(pred, target)
    diff = _to_unit_range(pred) - _to_unit_range(target)
    return diff.pow(2).mean(dim=1)


# A video whose PSNR varies by less than this (max − min, dB) has no spread to normalise: min-max would blow
# sensor noise up to the full [0, 1] range and rank a clip where nothing happens above every other video.
# 0.1 dB means the worst frame's MSE is within 2.3 % of the best frame's.
FLAT_PSNR_SPAN_DB = 0.1


def is_flat(psnr: np.ndarray) -> bool:
    """Whether one video's PSNR span (max − min) is below FLAT_PSNR_SPAN_DB (dB); empty counts as flat."""
    psnr = np.asarray(psnr, dtype=np.float64)
    return psnr.size == 0 or float(psnr.max() - psnr.min()) < FLAT_PSNR_SPAN_DB


def minmax_normalise(psnr: np.ndarray) -> np.ndarray:
    """Min-max normalise one video's PSNR (dB) to [0, 1] as float64: (x - min) / (max - min).

    psnr: 1-D array (N,). A video without spread (`is_flat`) maps to all ones — every frame as good as
    its best, i.e. normal — instead of amplifying noise (or dividing by zero).
    """
    x = np.asarray(psnr, dtype=np.float64)
    if is_flat(x):
        return np.ones_like(x)
    lo, hi = x.min(), x.max()
    return (x - lo) / (hi - lo)


def anomaly_scores(psnr: np.ndarray) -> np.ndarray:
    """Paper score of one video: 1 - minmax(PSNR). psnr: (N,) dB; returns float64 (N,) in [0, 1], high = anomalous.

    A video without spread (`is_flat`) scores 0 everywhere (normal)."""
    return 1.0 - minmax_normalise(psnr)


def stream_scores(psnr: np.ndarray, baseline: float | np.ndarray, std: float) -> np.ndarray:
    """Stream-mode score of frames scored one by one, without the rest of the video: (baseline − PSNR) / std, the
    number of training standard deviations a frame's prediction is worse than expected (float64, same shape as
    `psnr`; high = anomalous, unbounded). baseline: dB, a scalar (the training PSNR mean) or one value per frame;
    std > 0 dB. The paper's per-video min-max (`anomaly_scores`) needs the whole video first."""
    return (np.asarray(baseline, dtype=np.float64) - np.asarray(psnr, dtype=np.float64)) / std


def flat_videos_note(psnr_by_video: dict[str, np.ndarray]) -> str | None:
    """One line naming the videos whose scores are 0 because their PSNR has no spread, or None."""
    flat = [name for name, psnr in psnr_by_video.items() if len(psnr) and is_flat(psnr)]
    if not flat:
        return None
    shown = ", ".join(flat[:8]) + (", …" if len(flat) > 8 else "")
    return (
        f"{len(flat)} video(s) have a PSNR span below {FLAT_PSNR_SPAN_DB} dB (max − min), no spread to "
        f"min-max normalise: their frames score 0 (normal): {shown}"
    )


def true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (start, end) index pairs of the True runs in a 1-D boolean array, e.g. abnormal intervals."""
    edges = np.diff(np.concatenate([[0], np.asarray(mask, dtype=np.int8), [0]]))
    return [(int(a), int(b)) for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1)]
