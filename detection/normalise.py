"""PSNR (dB) -> anomaly score, the two ways detect.py offers (docs/detection.md#modes).

whole mode: 1 − min-max(PSNR) within each scene of a file, the paper's per-video normalisation (Liu et al., CVPR
2018, Sec. 3.5); stream mode: (baseline − PSNR) / std, the baseline starting at the training PSNR mean and kept by
detection.scenes.SceneTracker (re-settled after a scene change, following slow drifts).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from config import STATS_WINDOWS
from detection.scenes import REFERENCE_S, SceneSettings, SceneTracker, scene_scores
from errors import FFPError
from evaluation.scores import stream_scores
from inference.runtime import ModelInfo

if TYPE_CHECKING:
    from detection.scored import Scored


@dataclass
class Normaliser:
    """PSNR (dB) -> anomaly score. mode 'stream': (mean - psnr) / std; 'whole': 1 - minmax over the file."""

    mode: str
    mean: float | None = None
    std: float | None = None
    origin: str = ""

    def stream(self, psnr: np.ndarray, base: np.ndarray | None = None) -> np.ndarray:
        """Scores of a batch as soon as it is predicted (stream mode only; float64): (base − PSNR) / std, with each
        frame's baseline `base` ((N,) dB, detection.scenes.SceneTracker) or the training mean."""
        assert self.mean is not None and self.std is not None, "stream mode has its statistics (normaliser())"
        return stream_scores(psnr, self.mean if base is None else base, self.std)

    def final(self, scored: Scored, fps: float, in_frames: int) -> tuple[np.ndarray, list[str]]:
        """Scores of the whole file (N,) float64 at `fps` scored frames/s: stream mode's, or 1 − min-max(PSNR) within
        each scene (detection.scenes.scene_scores); and a note per scene too short to normalise."""
        if self.mode == "stream":
            return self.stream(scored.psnr, scored.base), []
        scores, short = scene_scores(scored.psnr, scored.scene, SceneSettings(fps, in_frames).frames(REFERENCE_S))
        notes = [
            f"scene {k} (frames {scored.numbers[scored.scene == k][0]}-{scored.numbers[scored.scene == k][-1]}) is "
            f"shorter than {REFERENCE_S:g} s: too short to normalise over itself, scored 0"
            for k in short
        ]
        return scores, notes

    def tracker(self, fps: float, in_frames: int, threshold: float) -> SceneTracker:
        """A SceneTracker for one stream at `fps` frames/s: stream mode's baseline starts at the training mean and
        follows drifts on frames at most `threshold` std below it; whole mode has none."""
        if self.mode != "stream" or self.std is None:
            return SceneTracker(SceneSettings(fps, in_frames))
        return SceneTracker(SceneSettings(fps, in_frames), self.mean, threshold * self.std)

    @property
    def label(self) -> str:
        """Short name of the score, for plot legends."""
        return "z-score of -PSNR (training stats)" if self.mode == "stream" else "1 - minmax(PSNR)"

    def describe(self) -> str:
        """How the score was computed, for the report."""
        if self.mode == "stream":
            return (
                f"(baseline - PSNR) / std, the baseline starting at the training PSNR mean {self.mean:.4f} dB, std "
                f"{self.std:.4f} dB ({self.origin}), following slow drifts and re-settled after scene changes"
            )
        return "1 - minmax(PSNR) within each scene of the input (the paper's per-video normalisation)"


def stream_stats(info: ModelInfo, args: argparse.Namespace) -> tuple[float, float, str]:
    """(mean, std, where from) of the training PSNR: flags, the model file, or (a PyTorch checkpoint) computed now
    from its training data (with this command's config `info.cfg`)."""
    if args.psnr_mean is not None:
        return args.psnr_mean, args.psnr_std, "--psnr_mean/--psnr_std"
    stats = info.psnr_stats
    if isinstance(stats, dict) and "mean" in stats and "std" in stats:
        return float(stats["mean"]), float(stats["std"]), f"stored in {info.path.name}"
    if info.state is None:
        raise FFPError(
            f"--mode stream needs the training PSNR statistics: ONNX model {info.path} has none (metadata "
            "ffp.psnr_stats); pass --psnr_mean and --psnr_std, or use --mode whole"
        )
    from inference.predict import psnr_stats_from_training_data
    from utils.devices import resolve_device

    ckpt, device = info.path, resolve_device(info.cfg.device)
    try:
        stats = psnr_stats_from_training_data(
            info.state, info.cfg, args.data_root, device, f"checkpoint {ckpt}", STATS_WINDOWS
        )
    except FFPError as exc:
        raise FFPError(
            f"--mode stream needs the training PSNR statistics ('psnr_stats'): {exc}, pass "
            f"--psnr_mean and --psnr_std, or use --mode whole"
        ) from None
    print(
        f"training PSNR statistics computed from {stats['n']} windows of {stats['computed_from']} (checkpoint {ckpt} "
        f"has none; not stored): mean {stats['mean']:.3f} dB, std {stats['std']:.3f} dB",
        flush=True,
    )
    return stats["mean"], stats["std"], f"computed now from {stats['n']} training windows of {stats['computed_from']}"


def normaliser(mode: str, info: ModelInfo, args: argparse.Namespace) -> Normaliser:
    """The score normalisation of --mode. Whole mode keeps the model's stored training PSNR statistics, when it
    has them, only to say when the clip is far from the training footage (they do not enter its scores)."""
    if mode == "whole":
        stats = info.psnr_stats
        if isinstance(stats, dict) and "mean" in stats and "std" in stats:
            return Normaliser("whole", float(stats["mean"]), float(stats["std"]), f"stored in {info.path.name}")
        return Normaliser("whole")
    mean, std, origin = stream_stats(info, args)
    if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
        raise FFPError(
            f"stream mode needs a finite PSNR mean and a positive std, got mean {mean}, std {std} "
            "(--psnr_mean/--psnr_std or the checkpoint's psnr_stats)"
        )
    return Normaliser("stream", float(mean), float(std), origin)
