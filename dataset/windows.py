"""Training windows: random access to every (in_frames + 1)-frame window of the training videos, in a seeded order.

Frames are decoded ONCE:
  - into RAM (one uint8 array per video, shared copy-on-write with DataLoader workers) when all training
    frames fit --cache_max_gb at the config size;
  - otherwise frame folders are read on demand, and video files are extracted once into the frame cache
    (`frame_cache.extracted_frames`).
`train_loader` serves the windows in batches, epoch by epoch in a seeded order that a resumed run continues.
A window is addressed by positions, but never spans a gap in the frame numbers (a folder's missing files, a file's
damaged frames): its frames are consecutive in the source, as the model learns motion from them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from config import Config
from utils.progress import PlainLines, Progress

from .folders import FrameFolder
from .frame_cache import extracted_frames
from .prepare import check_length
from .types import Video
from .videos import VideoFile
from .workers import data_workers, leave_interrupts_to_main


def _declared_frames(video: Video) -> int:
    """Frame count for budgeting: exact for folders and probed files, the container's claim otherwise."""
    source = video.source
    if isinstance(source, FrameFolder):
        return len(source)
    declared = source.container()[1]
    if declared <= 0:
        return len(source)
    return declared if source.stop is None else min(declared, source.stop)  # a cut (--train_until) reads fewer


def _decode_all(video: Video, height: int, width: int, progress: Progress) -> tuple[np.ndarray, np.ndarray]:
    """Every frame of `video` as one n×H×W×3 uint8 array, and their (n,) int64 frame numbers."""
    frames, numbers = [], []
    for number, rgb in video.source.frames(height, width):
        frames.append(rgb)
        numbers.append(number)
        progress.update()
    stacked = np.stack(frames) if frames else np.zeros((0, height, width, 3), np.uint8)
    return stacked, np.asarray(numbers, dtype=np.int64)


def window_starts(numbers: np.ndarray, window: int) -> np.ndarray:
    """Positions s whose `window` frames s..s+window-1 have consecutive frame numbers ((n,) int64 `numbers`):
    every window start of a video without gaps, none spanning a gap."""
    n = len(numbers) - window + 1
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(numbers[window - 1 :] - numbers[:n] == window - 1)


class FrameStore:
    """Random access to the frames of training videos: per video a RAM array, or a frame folder read on demand.

    RAM when all frames fit `cache_max_gb` at the config size (and `cache_frames` is on); otherwise folders
    stay on disk and video files are extracted once into the frame cache (see `frame_cache.extracted_frames`).
    `numbers` holds each video's (n,) int64 frame numbers. FFPError (naming the file) for a frame or video that
    cannot be read, or a frame cache that cannot be written.
    """

    def __init__(self, videos: list[Video], cfg: Config):
        self.height, self.width = cfg.height, cfg.width
        declared = [_declared_frames(v) for v in videos]
        self.in_ram = cfg.cache_frames and sum(declared) * cfg.height * cfg.width * 3 / 1e9 <= cfg.cache_max_gb
        self.readers: list[np.ndarray | FrameFolder] = []
        self.numbers: list[np.ndarray] = []
        # extraction into the frame cache shows its own progress per file (extracted_frames)
        progress = Progress(
            sum(declared), "decoding training frames", unit="frame", lines=PlainLines(500), enabled=self.in_ram
        )
        try:
            for video, n in zip(videos, declared):
                if self.in_ram:
                    frames, numbers = _decode_all(video, cfg.height, cfg.width, progress)
                    self.readers.append(frames)
                    self.numbers.append(numbers)
                    continue
                folder = (
                    extracted_frames(video.source, cfg.height, cfg.width, cfg.cache_dir, n)
                    if isinstance(video.source, VideoFile)
                    else video.source
                )
                self.readers.append(folder)
                self.numbers.append(folder.numbers())
        finally:
            progress.close()
        self.lengths = [len(r) for r in self.readers]

    def clip(self, video: int, start: int, length: int) -> np.ndarray:
        """Frames start..start+length-1 of training video `video` as length×H×W×3 uint8 RGB."""
        reader = self.readers[video]
        if isinstance(reader, np.ndarray):
            return reader[start : start + length]
        return np.stack([reader.read(start + k, self.height, self.width) for k in range(length)])


class TrainWindows(Dataset):
    """Every (in_frames+1)-frame window of every training video (cut to --train_until when given).

    Item i -> uint8 tensor (T+1)×3×H×W (T input frames then the target), converted on the device. A window's
    frames have consecutive frame numbers: none spans a gap (`window_starts`). Building it decodes the training
    frames (see FrameStore) and checks each video holds one window: FFPError naming the first shorter video.
    """

    def __init__(self, videos: list[Video], cfg: Config):
        self.window = cfg.in_frames + 1
        self.videos = videos
        self.store = FrameStore(videos, cfg)
        cut = f" before --train_until {cfg.train_until}" if cfg.train_until not in (None, "") else ""
        for video, n in zip(videos, self.store.lengths):
            check_length(video, n, cfg.in_frames, cut)
        self.index = np.array(
            [(v, s) for v, numbers in enumerate(self.store.numbers) for s in window_starts(numbers, self.window)],
            dtype=np.int64,
        ).reshape(-1, 2)

    def decode_problems(self) -> list[str]:
        """'<video>: <problem>' for training videos with missing frames (a folder's missing files, a file's damaged
        frames or early end) or uncertain frame numbers."""
        return [f"{video.where}: {p}" for video in self.videos for p in video.source.report().problems()]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> torch.Tensor:
        video, start = self.index[i]
        clip = self.store.clip(int(video), int(start), self.window)  # (T+1)×H×W×3
        return torch.from_numpy(np.ascontiguousarray(clip)).permute(0, 3, 1, 2).contiguous()


class EpochShuffleSampler(Sampler[int]):
    """Infinite stream of window indices: epoch e is a permutation seeded by (seed, e); sharded across ranks.

    `start` skips the first `start` indices of this rank's stream, so a resumed run at step s with batch b
    sees exactly the windows the uninterrupted run would (start = s·b).
    """

    def __init__(self, n: int, seed: int, start: int = 0, rank: int = 0, world_size: int = 1):
        self.n, self.seed, self.start, self.rank, self.world = n, seed, start, rank, world_size

    def _epoch(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        perm = torch.randperm(self.n, generator=g)
        per_rank = self.n // self.world  # drop the remainder so ranks never overlap and stay in step
        return perm[self.rank * per_rank : (self.rank + 1) * per_rank]

    def __iter__(self):
        per_rank = self.n // self.world
        epoch, skip = divmod(self.start, per_rank)
        while True:
            yield from self._epoch(epoch)[skip:].tolist()
            epoch, skip = epoch + 1, 0

    def __len__(self) -> int:  # nominal: one epoch
        return self.n // self.world


def train_loader(windows: TrainWindows, cfg: Config, start_step: int, rank: int = 0, world_size: int = 1) -> DataLoader:
    """DataLoader over training windows in the seeded order (EpochShuffleSampler, this rank's share), resuming at
    `start_step`: endless uint8 batches B×(T+1)×3×H×W, B = cfg.batch_size; workers from cfg.num_workers."""
    sampler = EpochShuffleSampler(len(windows), cfg.seed, start_step * cfg.batch_size, rank, world_size)
    workers = data_workers(cfg.num_workers, cfg.device)
    return DataLoader(
        windows,
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        drop_last=True,
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
        worker_init_fn=leave_interrupts_to_main,
    )
