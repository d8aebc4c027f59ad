"""Test streaming: every frame of one video in order, batch by batch, each frame decoded once.

    for frames in video_frame_batches(video, cfg, 16): ...   # uint8 B×3×H×W; then .numbers, .seconds, .report

Frame folders are decoded by DataLoader workers in parallel; video files by one worker at most (decoding is
sequential). Every frame keeps its true number in the source (a folder's file numbers, a file's place in its
container) and its time in seconds; the source's report (FolderReport or DecodeReport) comes with the last batch.
"""

from __future__ import annotations

import array
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from config import FOLDER_FPS, Config

from .array_batches import timed_batches
from .folders import FolderReport, FrameFolder
from .types import Video
from .videos import DecodeReport, VideoFile
from .workers import data_workers, leave_interrupts_to_main


class FolderFrameDataset(Dataset):
    """The frames of a frame folder in order, each decoded once: item i (position) -> (3×H×W uint8 tensor, the
    frame number of file i, from its name: see folders.number_files)."""

    def __init__(self, source: FrameFolder, height: int, width: int):
        self.source, self.height, self.width = source, height, width
        self.numbers = source.numbers()

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        frame = self.source.read(i, self.height, self.width)
        return torch.from_numpy(frame).permute(2, 0, 1).contiguous(), int(self.numbers[i])


class FileBatchDataset(IterableDataset):
    """A video file decoded in order: items (B×3×H×W uint8, (B,) int64 frame numbers, (B,) float64 seconds from the
    first frame, None), then one empty item carrying the DecodeReport."""

    def __init__(self, source: VideoFile, height: int, width: int, batch_size: int):
        self.source, self.height, self.width, self.batch_size = source, height, width, batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, DecodeReport | None]]:
        for frames, numbers, seconds in timed_batches(self.source, self.height, self.width, self.batch_size):
            yield (
                torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous(),
                torch.tensor(numbers, dtype=torch.int64),
                torch.tensor(seconds, dtype=torch.float64),
                None,
            )
        empty = torch.zeros(0, dtype=torch.int64)
        yield torch.zeros((0, 3, 1, 1), dtype=torch.uint8), empty, empty.double(), self.source.report()


class FrameBatches:
    """Ordered uint8 B×3×H×W batches of one video's frames, each frame decoded once.

    Iterating fills `numbers` (a compact int64 array, 8 bytes a frame) with the frame numbers of the frames
    yielded so far (true source numbers: a file's place in its container, a folder's file numbers, gaps kept) and
    `seconds` (array('d'), 8 bytes a frame) with their times in seconds (a video file's timestamps relative to its
    first frame; frame number / config.FOLDER_FPS for a folder), and sets `report` (the source's DecodeReport or
    FolderReport: gaps, uncertain numbers, an early end) once the end is reached. Frame folders are decoded by
    DataLoader workers where `workers` > 0; video files by one worker at most (decoding is sequential). Decoding
    raises FFPError naming an unreadable frame or file.
    """

    def __init__(self, video: Video, height: int, width: int, batch_size: int, workers: int = 0):
        self.source = video.source
        self.height, self.width, self.batch_size, self.workers = height, width, batch_size, workers
        self.numbers = array.array("q")
        self.seconds = array.array("d")
        self.report: DecodeReport | FolderReport | None = None

    def __iter__(self) -> Iterator[torch.Tensor]:
        self.numbers, self.seconds, self.report = array.array("q"), array.array("d"), None
        pin = torch.cuda.is_available()
        if isinstance(self.source, FrameFolder):
            loader = DataLoader(
                FolderFrameDataset(self.source, self.height, self.width),
                batch_size=self.batch_size,
                shuffle=False,
                num_workers=self.workers,
                pin_memory=pin,
                worker_init_fn=leave_interrupts_to_main,
            )
            for frames, numbers in loader:
                self.numbers.extend(numbers.tolist())
                self.seconds.extend((numbers.double() / FOLDER_FPS).tolist())
                yield frames
            self.report = self.source.report()
            return
        loader = DataLoader(
            FileBatchDataset(self.source, self.height, self.width, self.batch_size),
            batch_size=None,
            num_workers=min(self.workers, 1),
            pin_memory=pin,
            worker_init_fn=leave_interrupts_to_main,
        )
        for frames, numbers, seconds, report in loader:
            if report is not None:
                self.report = report
            if len(numbers):
                self.numbers.extend(numbers.tolist())
                self.seconds.extend(seconds.tolist())
                yield frames


def video_frame_batches(video: Video, cfg: Config, batch_size: int, workers: int | None = None) -> FrameBatches:
    """FrameBatches of `video` at the config size (uint8 B×3×H×W, B <= batch_size, every frame once, in order);
    `workers` None: from cfg.num_workers via `data_workers`."""
    workers = data_workers(cfg.num_workers, cfg.device) if workers is None else workers
    return FrameBatches(video, cfg.height, cfg.width, batch_size, workers)
