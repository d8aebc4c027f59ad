"""Scene changes: the whole view changing (lights switched, an infrared filter flipping at dusk, the camera bumped),
told apart from an anomaly in one region, and the score baseline that re-settles after it and follows slow drifts.

    tracker = SceneTracker(SceneSettings(fps=10, in_frames=4), base=psnr_mean)   # base None: whole mode
    verdict = tracker.step(number, seconds, psnr, background)                     # per predicted frame, in order

The cue is where the prediction error lies. An anomaly (a cart, a cyclist) raises the error in a region and leaves
the rest of the frame predicted as well as ever; a change of the whole scene raises it everywhere. So each frame's
*background error* is the error that half its pixels exceed (`background_db`: the median of the per-pixel squared
error, in dB like PSNR). A scene change starts when it falls more than SCENE_DB below its recent level (the median
over the last REFERENCE_S seconds of scored frames). Its frames are not scored (no score, no alarm), like the frames
after a break in time, until the background error holds steady (within SCENE_DB) for SETTLE_S; the change is then
reported once, and the new scene's level becomes the reference:

- stream mode: the PSNR baseline of the z-score becomes the median PSNR of the settling frames (the model may
  predict a brighter scene less well everywhere: that is the new normal, not an anomaly), and between changes it
  follows slow drifts (dusk, clouds) as an exponential average, with a time constant of DRIFT_S, of the PSNR of the
  scored frames that are clearly normal (within DRIFT_SHARE of the threshold of it, either way: frames nearer an
  alarm, as a slow cyclist's are, would pull the baseline down to the anomaly, and a one-sided gate would lift it);
- whole mode: each scene is min-max normalised over itself (`scene_scores`), the paper's per-video normalisation
  applied per scene; a scene shorter than REFERENCE_S scores 0 (too short to tell its normal frames).

Scene changes are looked for once WARMUP_S of frames has been scored. The constants were set on real Ped2 footage
(training video 04) with the shipped model: background error 50-53 dB on normal frames, unchanged by a box crossing
the scene (51 dB while PSNR falls from 38 to 22 dB); 5-25 dB during a +40 grey-level light switch with a 3-frame
white flash, then 40 dB on the brighter scene (PSNR 33 dB: alarms all night against the training baseline); a dusk
darkening ×0.995 per frame drops it 5 dB as it starts and then about 0.1 dB per frame (a drift, not a change).
A region that fills more than half the frame counts as a change of the whole scene.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

SCENE_DB = 10.0  # background error this much worse than its recent level: the whole scene changed
BACKGROUND_QUANTILE = 0.5  # the background error: the squared error that half a frame's pixels exceed
REFERENCE_S = 5.0  # the background's recent level: the median over this long of scored frames
SETTLE_S = 1.0  # a changed scene is settled once its background error held steady this long
WARMUP_S = 1.0  # scene changes are looked for once this much has been scored
DRIFT_S = 30.0  # stream mode's baseline follows slow drifts with this time constant
DRIFT_SHARE = 0.5  # of the threshold: frames scoring more do not move the baseline
FLOOR = 1e-10  # squared errors below this count as this (a perfect prediction would give -inf dB)


def background_db(error_maps: np.ndarray) -> np.ndarray:
    """(M,) float64 background error in dB of M×H×W per-pixel squared error maps on [0, 1] frames: −10·log10 of
    each map's BACKGROUND_QUANTILE quantile (higher = better predicted, like PSNR)."""
    flat = np.asarray(error_maps, dtype=np.float32).reshape(len(error_maps), -1)
    return -10.0 * np.log10(np.maximum(np.quantile(flat, BACKGROUND_QUANTILE, axis=1).astype(np.float64), FLOOR))


@dataclass(frozen=True)
class SceneSettings:
    """fps: frames per second of the scored stream (the model's rate); the settle, reference and warm-up periods are
    counted in its frames (at least in_frames + 1, so a settled scene's windows lie entirely after the change)."""

    fps: float
    in_frames: int

    def frames(self, seconds: float) -> int:
        return max(self.in_frames + 1, round(seconds * self.fps))


@dataclass
class SceneChange:
    """One change of the whole scene: frames first_frame..last_frame (source numbers) were not scored; start_s and
    end_s are the times of the first and the last of them (s); drop_db: how far the background error fell below its
    level before (dB); settled: False when the stream ended before the new scene held steady."""

    first_frame: int
    last_frame: int
    start_s: float
    end_s: float
    drop_db: float
    settled: bool = True

    def as_dict(self) -> dict:
        return {
            "kind": "scene_change",
            "first_frame": self.first_frame,
            "last_frame": self.last_frame,
            "start_s": round(self.start_s, 3),
            "end_s": round(self.end_s, 3),
            "background_drop_db": round(self.drop_db, 2),
            "settled": self.settled,
        }

    def describe(self) -> str:
        """One line for the console and the report."""
        how = "settled" if self.settled else "not settled when the input ended"
        return (
            f"scene change at frame {self.first_frame} ({self.start_s:.2f} s): the whole view changed (background "
            f"prediction error {self.drop_db:.1f} dB worse); frames {self.first_frame}-{self.last_frame} not scored, "
            f"{how}"
        )


@dataclass
class Verdict:
    """What became of one frame: scored (False: part of a scene change), the PSNR baseline its stream-mode score
    uses (None in whole mode), its scene (0, 1, … counting changes). A change that settles is appended to
    SceneTracker.changes."""

    scored: bool
    base: float | None
    scene: int


@dataclass
class SceneTracker:
    """Follows one stream's frames in order (see the module docstring). base: stream mode's PSNR baseline to start
    from (the training mean, dB), or None (whole mode: no baseline). `changes` lists the settled scene changes."""

    settings: SceneSettings
    base: float | None = None
    threshold_db: float = math.inf  # stream mode: frames more than this below the baseline are alarms
    changes: list[SceneChange] = field(default_factory=list)
    scene: int = 0
    _recent: deque = field(default_factory=deque)  # background dB of the recent scored frames
    _seen: int = 0
    _open: SceneChange | None = None
    _settling: list[tuple[float, float]] = field(default_factory=list)  # (background, PSNR) of the change's frames

    def step(self, number: int, seconds: float, psnr: float, background: float) -> Verdict:
        """The verdict on the next frame (its source number, time in s, PSNR and background error in dB)."""
        s = self.settings
        if self._open is not None:
            return self._settle(number, seconds, psnr, background)
        reference = float(np.median(self._recent)) if self._recent else background
        if self._seen >= s.frames(WARMUP_S) and background < reference - SCENE_DB:
            self._open = SceneChange(number, number, seconds, seconds, reference - background)
            self._settling = [(background, psnr)]
            return Verdict(False, self.base, self.scene)
        self._seen += 1
        self._recent.append(background)
        while len(self._recent) > s.frames(REFERENCE_S):
            self._recent.popleft()
        base = self.base
        if self.base is not None and abs(self.base - psnr) <= DRIFT_SHARE * self.threshold_db:  # clearly normal
            self.base += (psnr - self.base) / (DRIFT_S * s.fps)
        return Verdict(True, base, self.scene)

    def _settle(self, number: int, seconds: float, psnr: float, background: float) -> Verdict:
        """A frame inside a scene change: settled once the last SETTLE_S of frames hold within SCENE_DB."""
        change = self._open
        assert change is not None
        change.last_frame, change.end_s = number, seconds
        change.drop_db = max(change.drop_db, float(np.median(self._recent)) - background if self._recent else 0.0)
        self._settling = (self._settling + [(background, psnr)])[-self.settings.frames(SETTLE_S) :]
        levels = [b for b, _ in self._settling]
        if len(levels) < self.settings.frames(SETTLE_S) or max(levels) - min(levels) > SCENE_DB:
            return Verdict(False, self.base, self.scene)
        self._recent = deque(levels)
        if self.base is not None:
            self.base = float(np.median([p for _, p in self._settling]))
        self.changes.append(change)
        self._open, self._settling, self.scene = None, [], self.scene + 1
        return Verdict(False, self.base, self.scene - 1)

    def steps(self, numbers, seconds, psnr, background) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`step` over M frames in order ((M,) numbers, seconds, PSNR dB, background dB): (M,) bool scored, (M,)
        float64 baseline (NaN in whole mode) and (M,) int64 scene of each."""
        verdicts = [
            self.step(int(n), float(t), float(p), float(b)) for n, t, p, b in zip(numbers, seconds, psnr, background)
        ]
        return (
            np.array([v.scored for v in verdicts], dtype=bool),
            np.array([math.nan if v.base is None else v.base for v in verdicts], dtype=np.float64),
            np.array([v.scene for v in verdicts], dtype=np.int64),
        )

    def finish(self) -> SceneChange | None:
        """The end of the stream: a change still settling is closed (settled False) and returned."""
        change, self._open = self._open, None
        if change is None:
            return None
        change.settled = False
        self.changes.append(change)
        return change


def scene_scores(psnr: np.ndarray, scenes: np.ndarray, min_frames: int) -> tuple[np.ndarray, list[int]]:
    """Whole mode's scores per scene: 1 − min-max(PSNR) within each scene. psnr, scenes: (N,) dB and scene index of
    each scored frame; min_frames: a scene with fewer scored frames (when there are several) is too short to tell
    its normal from its anomalies and scores 0 (min-max would put 1 on its worst frame whatever it shows).
    Returns ((N,) float64 scores in [0, 1], the indices of the scenes scored 0 for being short)."""
    from evaluation.scores import anomaly_scores

    psnr, scenes = np.asarray(psnr, dtype=np.float64), np.asarray(scenes)
    scores, short = np.zeros(len(psnr), dtype=np.float64), []
    found = np.unique(scenes)
    for scene in found:
        mask = scenes == scene
        if len(found) > 1 and mask.sum() < min_frames:
            short.append(int(scene))
            continue
        scores[mask] = anomaly_scores(psnr[mask])
    return scores, short
