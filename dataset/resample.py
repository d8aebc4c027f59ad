"""Frame rate and continuity: a source's frames resampled to the model's rate by their timestamps, and the rule
that keeps a window from spanning a break in them.

The method predicts frame t+1 from frames t-3..t, so the motion between two input frames is part of what the
model learned: a model trained on 10 fps footage scores a 25 fps camera as if everything moved 2.5× slower.
Sources at another rate are therefore resampled to the training footage's rate (`Resampler`); checkpoints record
that rate (`footage_fps`; train.py stores it as state['fps']).

For the same reason a window never spans a break (`Continuity`): a missing frame number (a folder's missing file,
a file's damaged frames) or a hole in time (a recorder that dropped frames). The frames whose history lies across a
break are not scored, like a video's first in_frames frames. Live sources apply the rule as they stream
(`dataset.live`).
"""

from __future__ import annotations

import array
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from config import FOLDER_FPS

from .folders import FrameFolder
from .types import Video
from .videos import VideoFile

# Frame rates documented by the benchmarks' authors, for training data stored as frame folders (which carry no
# rate). UCSD Ped1/Ped2: "recorded at 10 fps" (Mahadevan et al., CVPR 2010, and the dataset page). Avenue and
# ShanghaiTech training videos are .avi files whose containers state their rate, so they need no entry here.
DOCUMENTED_FPS = {"ped1": 10.0, "ped2": 10.0}
SYNTHETIC_FPS = 10.0  # the embedded synthetic dataset is generated as 10 fps footage (synthetic/)
SAME_RATE = 0.02  # rates within 2 % of each other are the same rate: no resampling
# In a file, a step between two frames longer than this many frame periods (of the slower of the model's rate and the
# file's stated rate) is a hole in time. Above 2 with room for millisecond timestamps, so that one late frame and a
# variable-rate file's stretches at half its average rate (a phone in low light) stay continuous; a recorder that
# dropped frames for a second is a hole.
HOLE_PERIODS = 2.5


class Resampler:
    """Keeps the frames nearest a `fps` timeline (frames per second), from frame times in seconds.

    A frame is kept when it comes at most half a period before the next tick (the frame nearest the tick; arrival
    jitter of a source at the model's own rate keeps every frame); the next tick is one period
    later, or one period after this frame when the source stalled for a period or more. A source slower than
    `fps` keeps every frame. `fps` None keeps every frame (no known rate to resample to).
    """

    def __init__(self, fps: float | None):
        self.period = 1.0 / fps if fps else 0.0
        self.next_tick: float | None = None

    def keep(self, t: float) -> bool:
        """Whether the frame at `t` seconds is kept (t non-decreasing over calls)."""
        if not self.period:
            return True
        if self.next_tick is not None and t < self.next_tick - self.period / 2:
            return False
        tick = t if self.next_tick is None or t - self.next_tick >= self.period else self.next_tick
        self.next_tick = tick + self.period
        return True


def needs_resampling(source_fps: float | None, model_fps: float | None, tolerance: float = SAME_RATE) -> bool:
    """True when both rates are known and the source is more than `tolerance` (a fraction) faster than the model."""
    return bool(source_fps and model_fps and source_fps > model_fps * (1 + tolerance))


def benchmark_fps(dataset: str) -> tuple[float, str] | None:
    """(frame rate, where it comes from) of a built-in dataset stored as frames: the documented rate of a benchmark
    (DOCUMENTED_FPS) or the synthetic dataset's; None for any other dataset."""
    if dataset in DOCUMENTED_FPS:
        return DOCUMENTED_FPS[dataset], f"{dataset}'s documented rate"
    if dataset == "synthetic":
        return SYNTHETIC_FPS, "the synthetic dataset's rate"
    return None


def rate_note(
    source_fps: float | None, model_fps: float | None, where: str, tolerance: float = SAME_RATE
) -> str | None:
    """The one line said when `where`'s frame rate differs from the model's by more than `tolerance` (a fraction;
    None when they agree or one is unknown)."""
    if not (source_fps and model_fps) or abs(source_fps / model_fps - 1) <= tolerance:
        return None
    if source_fps > model_fps:
        return (
            f"{where} runs at {source_fps:g} fps and the model was trained on {model_fps:g} fps footage: its frames "
            f"are resampled to {model_fps:g} fps by their timestamps (about 1 in {source_fps / model_fps:.3g} kept)"
        )
    return (
        f"{where} runs at {source_fps:g} fps, slower than the {model_fps:g} fps the model was trained on: every frame "
        f"is scored, and objects move {model_fps / source_fps:.3g}× farther between frames than in training"
    )


class ResampledBatches:
    """A FrameBatches (or ArrayBatches) stream with only the frames a Resampler keeps (its batches, each cut to the
    kept frames, B ≥ 1).

    `numbers` (and `seconds` when the stream gives them) hold the kept frames only, so callers index them the same
    way as the stream's own; `report` is the stream's. Seconds are the stream's `seconds` when `timestamps` says they
    are true timestamps (a video file's), else frame number / `source_fps` (a frame folder, at --fps).
    """

    def __init__(self, batches, source_fps: float, model_fps: float, timestamps: bool = True):
        self.batches, self.source_fps, self.model_fps = batches, source_fps, model_fps
        self.timestamps = timestamps
        self.numbers = array.array("q")
        self.seconds = array.array("d")

    @property
    def report(self):
        return self.batches.report

    def __iter__(self) -> Iterator:
        self.numbers, self.seconds = array.array("q"), array.array("d")
        resampler = Resampler(self.model_fps)
        done = 0
        for frames in self.batches:
            numbers = self.batches.numbers[done : done + len(frames)]
            times = getattr(self.batches, "seconds", None) if self.timestamps else None
            if times is not None and len(times) >= done + len(frames):
                seconds = list(times[done : done + len(frames)])
            else:
                seconds = [n / self.source_fps for n in numbers]
            done += len(frames)
            keep = [i for i, t in enumerate(seconds) if resampler.keep(t)]
            if keep:
                self.numbers.extend(numbers[i] for i in keep)
                self.seconds.extend(seconds[i] for i in keep)
                yield frames[keep]


def footage_fps(videos: list[Video], dataset: str) -> tuple[float | None, str]:
    """The frame rate of training footage and where it comes from: the containers of video files (the most common
    rate when they differ), the documented rate of a built-in benchmark stored as frames (DOCUMENTED_FPS), the
    synthetic dataset's; (None, why) for frame folders of unknown rate."""
    declared = [v.source.container()[0] for v in videos if isinstance(v.source, VideoFile)]
    rates = [r for r in declared if r]
    if rates:
        values, counts = np.unique(np.round(rates, 3), return_counts=True)
        best = float(values[int(np.argmax(counts))])
        mixed = f"; {len(values)} different rates, the most common kept" if len(values) > 1 else ""
        return best, f"the training videos' containers{mixed}"
    if (known := benchmark_fps(dataset)) is not None:
        return known
    if videos and all(isinstance(v.source, FrameFolder) for v in videos):
        return None, "frame folders carry no frame rate"
    return None, "no training video states its frame rate"


def video_fps(video: Video, stated: float | None = None) -> float:
    """A video's frame rate (frames/s): `stated` (--fps) when given, else its container's, else FOLDER_FPS (frame
    folders, and files that state no usable rate)."""
    if stated:
        return stated
    return (video.source.container()[0] if isinstance(video.source, VideoFile) else None) or FOLDER_FPS


def at_model_rate(batches, video: Video, model_fps: float | None, source_fps: float | None = None):
    """A video's ordered frame batches `batches` (dataset.FrameBatches or ArrayBatches), resampled to `model_fps`
    (ResampledBatches) when the video (at `source_fps`, else `video_fps`) is faster; frame numbers stay the video's
    own either way."""
    fps = video_fps(video, source_fps)
    if needs_resampling(fps, model_fps):
        assert model_fps is not None
        # A folder's stream times are frame number / FOLDER_FPS, not its rate (--fps): count from its numbers.
        return ResampledBatches(batches, fps, model_fps, timestamps=isinstance(video.source, VideoFile))
    return batches


@dataclass(frozen=True)
class Continuity:
    """Where a stream of one video's frames breaks, so that no window spans the break.

    max_step_s: the longest step in time (s) between two frames of one window (`HOLE_PERIODS` frame periods);
    by_number: frame numbers must also follow each other (false for a stream resampled to the model's rate, whose
    kept frames skip numbers by design).
    """

    max_step_s: float = math.inf
    by_number: bool = True

    def breaks(self, numbers, seconds) -> np.ndarray:
        """(N,) bool for N frames (frame numbers (N,) int, times (N,) float s): True at i when frame i does not follow
        frame i-1 (a number skipped, or a step longer than max_step_s); index 0 is False."""
        numbers, seconds = np.asarray(numbers, dtype=np.int64), np.asarray(seconds, dtype=np.float64)
        broken = np.zeros(len(numbers), dtype=bool)
        if len(numbers) > 1:
            broken[1:] = np.diff(seconds) > self.max_step_s
            if self.by_number:
                broken[1:] |= np.diff(numbers) != 1
        return broken

    def scorable(self, batches, first: int, count: int, in_frames: int) -> np.ndarray:
        """(count,) bool: whether the targets at stream positions first..first+count-1 (first ≥ in_frames) have a
        window without a break, from `batches.numbers` and `batches.seconds` (the frames streamed so far)."""
        low = first - in_frames
        broken = self.breaks(batches.numbers[low : first + count], batches.seconds[low : first + count])
        within = np.concatenate([[0], np.cumsum(broken)])  # breaks among positions low..p, per p
        ends = np.arange(in_frames, in_frames + count)  # each target, as an offset from low
        return within[ends + 1] - within[ends + 1 - in_frames] == 0

    def holes(self, batches) -> list[tuple[int, int, float]]:
        """(number before, number after, seconds between) of every break of the frames streamed so far."""
        numbers, seconds = np.asarray(batches.numbers), np.asarray(batches.seconds)
        return [
            (int(numbers[i - 1]), int(numbers[i]), float(seconds[i] - seconds[i - 1]))
            for i in np.flatnonzero(self.breaks(numbers, seconds))
        ]


def continuity(video: Video, model_fps: float | None, source_fps: float | None = None) -> Continuity:
    """The Continuity of `video`'s stream as `at_model_rate` serves it: frame numbers must follow each other unless
    the stream is resampled; a video file's (or a resampled stream's) timestamps must not step more than
    HOLE_PERIODS periods of the slower of `model_fps` and its rate (`video_fps`: `source_fps`, else the file's).
    A folder that is not resampled has no times of its own (its frame numbers are its timeline)."""
    fps = video_fps(video, source_fps)
    resampled = needs_resampling(fps, model_fps)
    if not resampled and not isinstance(video.source, VideoFile):
        return Continuity()
    slowest = min(f for f in (fps, model_fps) if f)
    return Continuity(HOLE_PERIODS / slowest, by_number=not resampled)


def holes_note(holes: list[tuple[int, int, float]], in_frames: int, where: str) -> str | None:
    """The one line said about the breaks of `where` (None without any): how many, the first few, what was done."""
    if not holes:
        return None
    shown = ", ".join(f"{a}→{b} ({s:.2f} s)" for a, b, s in holes[:3]) + (" …" if len(holes) > 3 else "")
    return (
        f"{where}: {len(holes)} break(s) in its frames (missing frame numbers or a hole in time: {shown}); the "
        f"{in_frames} frames after each break are not scored, as their window would span it"
    )
