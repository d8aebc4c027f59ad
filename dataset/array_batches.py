"""A video's frames in order as NumPy batches, decoded in the calling thread, without torch.

    batches = ArrayBatches(video, 256, 256, 16)
    for frames in batches: ...        # uint8 B×H×W×3 RGB; then batches.numbers, .seconds, .report

What detect.py feeds ONNX Runtime (a deployment may have no torch); `dataset.streaming.FrameBatches` serves the
same frames as torch tensors through DataLoader workers (a video file's through `timed_batches` too; a folder's
through the same `images.read_frame`), so the two cannot differ.
"""

from __future__ import annotations

import array
from collections.abc import Iterator

import numpy as np

from config import FOLDER_FPS

from .folders import FolderReport, FrameFolder
from .types import Video
from .videos import DecodeReport, VideoFile


def timed_batches(
    source: FrameFolder | VideoFile, height: int, width: int, batch_size: int
) -> Iterator[tuple[np.ndarray, list[int], list[float]]]:
    """(B×H×W×3 uint8 RGB frames, their B frame numbers, their B times in seconds) of every frame of `source` in
    order, B = batch_size except for the last batch (B ≥ 1). Frames get the training preprocessing
    (`preprocess.prepare_frame`); times are a video file's timestamps from its first frame, a folder's frame number /
    config.FOLDER_FPS. Decoding raises FFPError naming an unreadable frame or file."""
    if isinstance(source, FrameFolder):
        items: Iterator[tuple[int, float, np.ndarray]] = (
            (number, number / FOLDER_FPS, rgb) for number, rgb in source.frames(height, width)
        )
    else:
        items = source.timed_frames(height, width)
    frames: list[np.ndarray] = []
    numbers: list[int] = []
    seconds: list[float] = []
    for number, time, rgb in items:
        frames.append(rgb)
        numbers.append(number)
        seconds.append(time)
        if len(frames) == batch_size:
            yield np.stack(frames), numbers, seconds
            frames, numbers, seconds = [], [], []
    if frames:
        yield np.stack(frames), numbers, seconds


class ArrayBatches:
    """Ordered uint8 B×H×W×3 RGB batches of one video's frames, each frame decoded once, in this thread.

    The interface of `dataset.streaming.FrameBatches` (its batches are B×3×H×W torch tensors): iterating fills
    `numbers` (int64, the true source frame numbers) and `seconds` (float64) of the frames yielded so far and sets
    `report` (DecodeReport or FolderReport) at the end.
    """

    def __init__(self, video: Video, height: int, width: int, batch_size: int):
        self.source = video.source
        self.height, self.width, self.batch_size = height, width, batch_size
        self.numbers = array.array("q")
        self.seconds = array.array("d")
        self.report: DecodeReport | FolderReport | None = None

    def __iter__(self) -> Iterator[np.ndarray]:
        self.numbers, self.seconds, self.report = array.array("q"), array.array("d"), None
        for frames, numbers, seconds in timed_batches(self.source, self.height, self.width, self.batch_size):
            self.numbers.extend(numbers)
            self.seconds.extend(seconds)
            yield frames
        self.report = self.source.report()
