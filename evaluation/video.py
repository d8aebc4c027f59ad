"""Heatmap videos: frame | prediction-error heatmap | overlay, with a running anomaly-score curve below.

Drawn entirely with OpenCV (no matplotlib per frame) so a whole test video renders in seconds.
Encoded as H.264 (yuv420p, moov atom first) through PyAV so that browsers play the videos the report links;
without PyAV (or without an H.264 encoder in it) OpenCV's MPEG-4 Part 2 ('mp4v') is the fallback, which
desktop players open but Chromium and Firefox do not (a one-line warning says so, once per process).
"""

from __future__ import annotations

import collections
import math
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from errors import FFPError
from evaluation.scores import true_runs
from utils.files import shared_mode

from . import video_sinks
from .video_sinks import (
    VIDEO_SUFFIXES,
    H264Sink,
    Mp4vSink,
    is_av_error,
    short_reason,
    video_backend,
    warn_fallback,
)

PANEL_MIN_H = 192  # small frames (e.g. 64 px model inputs) are unreadable in a player below this
STRIP_H = 100  # height of the score-curve strip under the panels (room for a header and y-axis labels)
VMAX_SAMPLES_PER_FRAME = 16384  # bounds choose_vmax memory on long videos
_FONT = cv2.FONT_HERSHEY_SIMPLEX


class VmaxEstimator:
    """Running estimate of a fixed heatmap scale: the q-th percentile of every per-pixel error seen.

    Each frame contributes an evenly strided subsample of at most 16384 pixels; once the pool holds
    more than `max_samples` values it is halved (every other value kept) and later frames are strided
    twice as much, so all frames stay equally represented and memory is bounded however long the video.
    """

    def __init__(self, q: float = 99.5, max_samples: int = 1 << 21):
        self.q, self.max_samples = q, max_samples
        self._chunks: list[np.ndarray] = []
        self._count, self._extra_stride = 0, 1

    def add(self, err: np.ndarray) -> None:
        """Offer one H x W (or B x H x W) error map."""
        flat = np.asarray(err, dtype=np.float32).reshape(-1, *np.shape(err)[-2:])
        for frame in flat.reshape(flat.shape[0], -1):
            step = max(1, frame.size // VMAX_SAMPLES_PER_FRAME) * self._extra_stride
            self._chunks.append(frame[::step].copy())
            self._count += self._chunks[-1].size
        if self._count > self.max_samples:
            pool = np.concatenate(self._chunks)[::2]
            self._chunks, self._count, self._extra_stride = [pool], pool.size, self._extra_stride * 2

    def value(self) -> float:
        """The percentile, at least 1e-8 (so a perfect prediction still divides safely)."""
        if not self._chunks:
            raise ValueError("choose_vmax needs at least one error map")
        return max(float(np.percentile(np.concatenate(self._chunks), self.q)), 1e-8)


def choose_vmax(errors: Iterable[np.ndarray], q: float = 99.5) -> float:
    """Fixed heatmap scale for one video: the q-th percentile of all its per-pixel errors.

    errors: iterable of H x W float arrays (squared error on [0, 1] frames). Frames larger than
    16384 pixels contribute an evenly strided subsample, and the pool is capped (`VmaxEstimator`), so
    memory stays small on long videos. Returns a positive float (at least 1e-8).
    """
    estimator = VmaxEstimator(q)
    for err in errors:
        estimator.add(err)
    return estimator.value()


def _even(n: int) -> int:
    """Round up to an even number: yuv420p (H.264) and MPEG-4 encoders reject odd frame dimensions."""
    return n + (n % 2)


def _to_bgr_uint8(frame01: np.ndarray) -> np.ndarray:
    """H x W x 3 RGB (or H x W grey) float in [0, 1] -> H x W x 3 BGR uint8 for OpenCV."""
    frame = np.clip(np.asarray(frame01, dtype=np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if frame.ndim == 2 or frame.shape[2] == 1:
        return cv2.cvtColor(frame.reshape(frame.shape[:2]), cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)


def _label_text(img: np.ndarray, text: str, org: tuple[int, int], color=(255, 255, 255)) -> None:
    """Text on a black box so it stays readable over any frame content.

    A box rather than a thick dark outline: OpenCV 5 advances thick glyphs further than thin ones,
    so an outline drawn as thicker text drifts away from the text it should frame.
    """
    (w, h), base = cv2.getTextSize(text, _FONT, 0.45, 1)
    x, y = org
    cv2.rectangle(img, (x - 2, y - h - 2), (x + w + 2, y + base), (0, 0, 0), -1)
    cv2.putText(img, text, org, _FONT, 0.45, color, 1, cv2.LINE_AA)


def heatmap_panels(frame01: np.ndarray, err: np.ndarray, vmax: float, panel_size: tuple[int, int]) -> np.ndarray:
    """Frame, error heatmap (0..vmax, JET) and overlay side by side, each upscaled to panel_size (H, W) with
    nearest neighbour, titled; BGR uint8 panel_size[0] × 3·panel_size[1] × 3.

    frame01: H×W×3 RGB float in [0, 1] (or H×W grey); err: H×W per-pixel squared error on [0, 1] frames.
    """
    frame = _to_bgr_uint8(frame01)
    level = np.clip(np.asarray(err, dtype=np.float32) / vmax, 0.0, 1.0)
    heat = cv2.applyColorMap((level * 255.0 + 0.5).astype(np.uint8), cv2.COLORMAP_JET)
    blend = cv2.addWeighted(frame, 0.55, heat, 0.45, 0.0)
    ph, pw = panel_size
    # Nearest keeps each model pixel a visible block, so the heatmap does not invent detail.
    row = cv2.resize(np.hstack([frame, heat, blend]), (3 * pw, ph), interpolation=cv2.INTER_NEAREST)
    for i, title in enumerate(("frame", f"error (0..{vmax:.2g})", "overlay")):
        _label_text(row, title, (i * pw + 6, 16))
    return row


def panel_size_for(size: tuple[int, int]) -> tuple[int, int]:
    """(H, W) of one panel for frames of `size` (H, W): upscaled by an integer factor to at least PANEL_MIN_H."""
    scale = max(1, math.ceil(PANEL_MIN_H / size[0]))
    return size[0] * scale, size[1] * scale


@dataclass(frozen=True)
class ScoreStrip:
    """The score curve under a heatmap video's panels.

    curve_length: total frame count, when known, which fixes the curve's x-axis (None: the curve rescales as frames
    arrive); score_range: (lo, hi) of its y-axis (scores outside are clipped), (0, 1) for min-max scores;
    threshold: drawn as a red line when given; first_frame: video frame index of the first frame added (e.g. 4 when
    the first 4 frames have no prediction), used in the frame counter; rolling (a live source): the curve shows the
    last curve_length frames, so memory stays flat for hours. ValueError for hi <= lo, or rolling without
    curve_length.
    """

    curve_length: int | None = None
    score_range: tuple[float, float] = (0.0, 1.0)
    threshold: float | None = None
    first_frame: int = 0
    rolling: bool = False

    def __post_init__(self) -> None:
        if not self.score_range[1] > self.score_range[0]:
            raise ValueError(f"score_range must be (lo, hi) with hi > lo, got {self.score_range}")
        if self.rolling and not self.curve_length:
            raise ValueError("rolling=True needs curve_length (the frames the curve shows)")


class HeatmapVideoWriter:
    """Context manager writing one mp4 frame per `add` call: H.264 when PyAV has it, else OpenCV 'mp4v'.

    Layout per video frame: three panels side by side (frame, error heatmap, overlay), each upscaled by
    an integer factor to at least 192 px high, and a score-curve strip of STRIP_H (100) px below, with the
    score axis's lo and hi labelled at its left and the threshold's value by its line. The heatmap uses
    a fixed `vmax` for the whole video, so equal colours mean equal error in every frame.
    `size` = (H, W) of the frames and error maps passed to `add`. `strip`: the score curve's axes, threshold and
    frame counter (`ScoreStrip`).
    `fps`: frames per second (> 0; 29.97 is kept as 2997/100, not rounded). `codec`: 'h264' (PyAV +
    libx264, yuv420p, moov first: plays in browsers), 'mp4v' (OpenCV MPEG-4 Part 2: desktop players only)
    or None for `video_backend()`, which warns once per process when it has to fall back to 'mp4v'.
    `path` must end in .mp4, .m4v or .mov.
    Output goes to a hidden temp file in the same folder, renamed onto `path` on a clean exit and
    deleted on an exception. Raises FFPError naming `path` when the writer cannot be opened, and from
    add/add_batch/close when encoding or writing fails (e.g. a full disk); the temp file is then deleted
    and the writer closed, so one failure gives one error. ValueError on bad arguments, or for codec='h264'
    without PyAV.
    Attributes: panel_size (H, W) of one panel; frame_size (W, H) of the whole video frame, both even.
    """

    _writer: H264Sink | Mp4vSink | None  # None once closed or aborted

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float = 25.0,
        *,
        vmax: float,
        size: tuple[int, int],
        strip: ScoreStrip = ScoreStrip(),
        codec: str | None = None,
    ):
        if not vmax > 0:
            raise ValueError(f"vmax must be positive, got {vmax}")
        self.score_range = (float(strip.score_range[0]), float(strip.score_range[1]))
        self.threshold, self.first_frame, self.curve_length = (
            strip.threshold,
            int(strip.first_frame),
            strip.curve_length,
        )
        self.path, self.vmax, self.size = Path(path), float(vmax), tuple(size)
        self.panel_size = panel_size_for((int(size[0]), int(size[1])))
        self.frame_size = (_even(3 * self.panel_size[1]), _even(self.panel_size[0] + STRIP_H))
        kept = strip.curve_length if strip.rolling else None
        self._scores: collections.deque[float] = collections.deque(maxlen=kept)
        self._labels: collections.deque[int] = collections.deque(maxlen=kept)
        self._count = 0  # frames added
        self._number = self.first_frame  # the number the counter shows for the last frame
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        # A Fraction keeps 29.97 (or 30000/1001) exact in the stream's rate and time base.
        self.fps = Fraction(fps).limit_denominator(1001)
        if codec is None:
            codec = video_backend()
            if codec == "mp4v":
                warn_fallback()
        if codec not in ("h264", "mp4v"):
            raise ValueError(f"codec must be 'h264', 'mp4v' or None, got {codec!r}")
        if codec == "h264" and video_sinks.h264_module() is None:
            raise ValueError("codec='h264' needs PyAV with libx264 (pip install av)")
        self.codec = codec
        self._tmp, self._writer = self._open()

    def _open(self) -> tuple[Path, H264Sink | Mp4vSink]:
        """Open the encoder on a temp file whose suffix matches the target (it picks the container)."""
        if self.path.suffix.lower() not in VIDEO_SUFFIXES:
            raise FFPError(f"cannot write a video to {self.path}: expected a .mp4 path ({', '.join(VIDEO_SUFFIXES)})")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(
                prefix=f".{self.path.stem}.", suffix=f".tmp{self.path.suffix}", dir=self.path.parent
            )
        except OSError as exc:
            raise FFPError(f"cannot write a video to {self.path}: {exc.strerror or exc}") from exc
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            shared_mode(tmp)  # the finished video gets the umask's permissions, not mkstemp's 0600
            if self.codec == "h264":
                return tmp, H264Sink(video_sinks.h264_module(), tmp, self.fps, self.frame_size)
            return tmp, Mp4vSink(tmp, self.fps, self.frame_size)
        except Exception as exc:
            tmp.unlink(missing_ok=True)
            raise FFPError(
                f"cannot open a video writer for {self.path} ({self.codec}, frame "
                f"{self.frame_size[0]}x{self.frame_size[1]}): {short_reason(exc)}"
            ) from exc

    def __enter__(self) -> HeatmapVideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def add(
        self, frame01: np.ndarray, err: np.ndarray, score: float, label: int | None = None, number: int | None = None
    ) -> None:
        """Append one video frame.

        frame01: H x W x 3 RGB float in [0, 1] (H x W grey also accepted); err: H x W float per-pixel
        squared error; score: anomaly score, drawn clipped to `score_range`; label: 1 abnormal, 0 normal,
        None unknown (abnormal frames are shaded red on the curve); number: the frame number the counter shows
        (default: first_frame + frames added before this one).
        """
        if self._writer is None:
            raise ValueError(f"{self.path}: add() after close()/abort()")
        if tuple(np.shape(err)) != self.size or tuple(np.shape(frame01)[:2]) != self.size:
            raise ValueError(f"frame {np.shape(frame01)} / error map {np.shape(err)} must be {self.size}")
        self._scores.append(float(score))
        self._labels.append(-1 if label is None else int(label))
        self._number = self.first_frame + self._count if number is None else int(number)
        self._count += 1
        canvas = np.zeros((self.frame_size[1], self.frame_size[0], 3), np.uint8)
        panels = self._panels(frame01, err)
        canvas[: panels.shape[0], : panels.shape[1]] = panels
        self._draw_strip(canvas[self.panel_size[0] : self.panel_size[0] + STRIP_H])
        self._guarded(self._writer.write, canvas)

    def _guarded(self, step, *args) -> None:
        """Run an encoder step; on failure discard the temp file and raise one FFPError naming `path`."""
        try:
            step(*args)
        except Exception as exc:
            if isinstance(exc, (ValueError, TypeError)) and not is_av_error(exc):
                raise  # a programming error, not a write failure
            writer, self._writer = self._writer, None
            if writer is not None:
                writer.discard()
            self._tmp.unlink(missing_ok=True)
            raise FFPError(f"cannot write the heatmap video {self.path}: {short_reason(exc)}") from exc

    def add_batch(self, frames: np.ndarray, errors: np.ndarray, scores, labels=None) -> None:
        """Append B video frames: frames B x H x W x 3 uint8 RGB; errors B x H x W float per-pixel squared
        error; scores (B,); labels (B,) 0/1 or None (unknown). See `add`."""
        labels = [None] * len(frames) if labels is None else labels
        for frame, err, score, label in zip(frames, errors, scores, labels):
            self.add(
                np.asarray(frame, dtype=np.float32) / 255.0, err, float(score), None if label is None else int(label)
            )

    def _panels(self, frame01: np.ndarray, err: np.ndarray) -> np.ndarray:
        """The three upscaled panels side by side, BGR uint8, with their titles."""
        return heatmap_panels(frame01, err, self.vmax, self.panel_size)

    def _draw_strip(self, strip: np.ndarray) -> None:
        """Score curve of all frames so far, abnormal frames shaded, current frame marked.

        strip: STRIP_H x W x 3 BGR uint8, drawn in place. The y-axis runs from score_range's lo (bottom)
        to hi (top), both labelled at the left edge; the threshold line carries its value at the right.
        """
        h, w = strip.shape[:2]
        strip[:] = (32, 32, 32)
        n = len(self._scores)
        length = max(self.curve_length or n, n, 2)
        lo, hi = self.score_range
        ticks = (_tick(hi), _tick(lo))
        tick_w = max(cv2.getTextSize(t, _FONT, _TICK_SCALE, 1)[0][0] for t in ticks)
        left, right, top, bottom = tick_w + 10, w - 6, 28, h - 8
        # y axis with its two end labels, so a reader knows what the curve's height means
        cv2.line(strip, (left - 3, top), (left - 3, bottom), (110, 110, 110), 1)
        for text, y in zip(ticks, (top, bottom)):
            (tw, th), _ = cv2.getTextSize(text, _FONT, _TICK_SCALE, 1)
            cv2.line(strip, (left - 6, y), (left - 3, y), (110, 110, 110), 1)
            cv2.putText(strip, text, (left - 8 - tw, y + th // 2), _FONT, _TICK_SCALE, (200, 200, 200), 1, cv2.LINE_AA)
        xs = left + np.arange(n) * (right - left) / (length - 1)
        ys = bottom - self._unit(np.asarray(self._scores)) * (bottom - top)
        half = max(1, int((right - left) / (length - 1) / 2))
        for start, end in true_runs(np.asarray(self._labels) == 1):
            cv2.rectangle(strip, (int(xs[start]) - half, top), (int(xs[end]) + half, bottom), (40, 40, 150), -1)
        if self.threshold is not None:
            y = int(round(bottom - self._unit(np.float64(self.threshold)) * (bottom - top)))
            cv2.line(strip, (left, y), (right, y), (60, 60, 230), 1, cv2.LINE_AA)
            text = f"threshold {_tick(self.threshold)}"
            (tw, th), _ = cv2.getTextSize(text, _FONT, _TICK_SCALE, 1)
            ty = y - 3 if y - 3 - th >= top - 6 else y + th + 3  # above the line, below when at the top
            cv2.putText(strip, text, (right - tw, ty), _FONT, _TICK_SCALE, (60, 60, 230), 1, cv2.LINE_AA)
        points = np.stack([xs, ys], axis=1).round().astype(np.int32)
        cv2.polylines(strip, [points], False, (0, 220, 255), 1, cv2.LINE_AA)
        cv2.circle(strip, tuple(int(v) for v in points[-1]), 3, (255, 255, 255), -1, cv2.LINE_AA)
        status = {1: "  ABNORMAL (ground truth)", 0: "  normal (ground truth)"}.get(self._labels[-1], "")
        _label_text(
            strip,
            f"frame {self._number}  score {self._scores[-1]:.3f}{status}",
            (6, 16),
            (120, 120, 255) if self._labels[-1] == 1 else (255, 255, 255),
        )

    def _unit(self, scores: np.ndarray | np.float64) -> np.ndarray | np.float64:
        """Scores mapped from `score_range` to [0, 1] (clipped) for plotting."""
        lo, hi = self.score_range
        return np.clip((scores - lo) / (hi - lo), 0.0, 1.0)

    def close(self) -> None:
        """Finish the file and move it onto `path`; idempotent (also after abort or a failure).

        Raises FFPError naming `path`, leaving no file, if no frame was added or finishing/renaming fails.
        """
        writer = self._writer
        if writer is None:
            return
        if not self._count:
            self.abort()
            raise FFPError(f"no frames were added to {self.path}; nothing written")
        self._guarded(writer.finish)
        self._writer = None
        self._guarded(os.replace, self._tmp, self.path)

    def abort(self) -> None:
        """Stop writing and delete the temp file; `path` is left untouched. Idempotent, never raises."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.discard()
            self._tmp.unlink(missing_ok=True)


_TICK_SCALE = 0.4  # axis labels: small, still legible at 1:1 in a player


def _tick(value: float) -> str:
    """A score as a short axis label: '0', '1', '3', '-2.5', '0.123', '1.2e+04'."""
    return f"{float(value):.3g}"
