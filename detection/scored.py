"""What one scoring pass over a file produced: the PSNR, frame numbers, baselines and scenes of its scored frames."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Scored:
    """What one scoring pass produced: PSNR and frame numbers of the scored frames, and how the pass ended."""

    psnr: np.ndarray
    numbers: np.ndarray
    frames_read: int
    base: np.ndarray  # stream mode's PSNR baseline of each scored frame (dB; NaN in whole mode)
    scene: np.ndarray  # the scene of each scored frame (0, 1, … counting scene changes)
    interrupted: int = 0  # the signal that stopped it, 0 if it ran to the end
    report: dict | None = None  # decode report of a video file (gaps, early end)
    holes: list = field(default_factory=list)  # breaks in the stream (Continuity.holes): the frames after unscored
    scene_changes: list = field(default_factory=list)  # detection.scenes.SceneChange: their frames unscored
