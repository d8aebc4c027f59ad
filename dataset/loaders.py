"""Serving frames to the networks: shuffled training windows, and every test frame of a video in order.

Training needs random access to (in_frames + 1)-frame windows. Frames are decoded ONCE:
  - into RAM (one uint8 array per video, shared copy-on-write with DataLoader workers) when all training
    frames fit --cache_max_gb at the config size;
  - otherwise frame folders are read on demand, and video files, which decode only sequentially, are
    extracted once into JPEG frames under --cache_dir (never under --data_root), with a progress display;
    the extraction is reused by later runs and redone when the file's size or modification time changes.
Test videos stream in order, batch by batch (`FrameBatches`), each frame decoded once.
"""
from __future__ import annotations

import array
import hashlib
import json
import os
import re
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler

from config import Config, parse_until
from utils import FFPError, Progress, atomic_write_text, resolve_device, shared_mode

from .layouts import DatasetFiles, Video, check_lengths, find_dataset
from .sources import DecodeReport, FrameFolder, VideoFile

MANIFEST = "manifest.json"
JPEG_QUALITY = 95   # extraction cache: visually lossless, ~10× smaller than raw frames


# ----------------------------------------------------------------------------------------------- dataset set-up
def frame_number(text: str, video: Video, flag: str) -> int:
    """A point in `video` given as frames ('400') or seconds ('40s') — `--train_until`, `--start` — as a frame
    number: seconds × the file's frame rate. FFPError naming the flag and the video when the value is malformed
    or given in seconds for a source without a frame rate (a folder of frames)."""
    parsed = parse_until(text, flag)
    if parsed is None:
        raise FFPError(f"{flag} needs a number of frames ('400') or seconds ('40s'), got {text!r}")
    value, unit = parsed
    if unit == "frames":
        return int(value)
    fps = video.source.container()[0] if isinstance(video.source, VideoFile) else None
    if fps is None:
        why = ("is a folder of frames (no frame rate)" if isinstance(video.source, FrameFolder)
               else "declares no usable frame rate")
        raise FFPError(f"{flag} {text}: {video.where} {why}; give it in frames instead (e.g. {flag} 400)")
    return int(round(value * fps))


def training_videos(files: DatasetFiles, cfg: Config) -> list[Video]:
    """The training videos, each cut to its normal part when --train_until is given."""
    if cfg.train_until in (None, ""):
        return files.train
    return [v.head(frame_number(cfg.train_until, v, "--train_until")) for v in files.train]


def prepare_dataset(cfg: Config) -> DatasetFiles:
    """Find the configured dataset (generating the synthetic one on first use, into <data_root>/synthetic only),
    read and check its labels, and check every test video and training frame folder holds one window.

    Training video FILES are counted when they are decoded (TrainWindows), still before any training step.
    """
    if cfg.dataset == "synthetic":
        from synthetic import ensure_synthetic
        ensure_synthetic(cfg.data_root, seed=0)
    files = find_dataset(cfg.data_root, cfg.dataset)
    window = cfg.in_frames + 1
    check_lengths([v for v in files.train if isinstance(v.source, FrameFolder)] + files.test, window, cfg.in_frames)
    return files


# ----------------------------------------------------------------------------------------------- frame cache
def _declared_frames(video: Video) -> int:
    """Frame count for budgeting: exact for folders and probed files, the container's claim otherwise."""
    source = video.source
    if isinstance(source, FrameFolder):
        return len(source)
    declared = source.container()[1]
    if declared <= 0:
        return len(source)
    return declared if source.stop is None else min(declared, source.stop)   # a cut (--train_until) reads fewer


def _cache_key(source: VideoFile, height: int, width: int) -> str:
    """Name part of an extraction folder: the file, its version, the frame size and the cut."""
    size, mtime_ns = _file_version(source.path)
    ident = f"{source.path.resolve()}|{size}|{mtime_ns}|{height}x{width}|{source.stop}"
    return hashlib.sha1(ident.encode()).hexdigest()[:12]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _file_version(path: Path) -> list[int]:
    """[size in bytes, modification time in ns]: what tells one version of a video file from the next."""
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def _remove_stale(base: Path, source: Path) -> None:
    """Delete extractions of `source` made from an older version of the file (nobody can use them again) and
    temp folders of crashed extractions (their process is gone). Extractions of the current file at another
    size or `--train_until` stay: another run may be reading them. Only folders of this cache layout are touched."""
    version = _file_version(source)
    for folder in base.iterdir():
        temp = re.fullmatch(r"\..+\.tmp-(\d+)-\w+", folder.name)
        if temp and not _pid_alive(int(temp.group(1))):
            shutil.rmtree(folder, ignore_errors=True)
        elif (folder / MANIFEST).is_file():
            try:
                manifest = json.loads((folder / MANIFEST).read_text())
            except (OSError, ValueError):
                continue
            old = manifest.get("file_version")   # absent in extractions of older code: left alone
            if manifest.get("source") == str(source) and old is not None and old != version:
                shutil.rmtree(folder, ignore_errors=True)


def extracted_frames(source: VideoFile, height: int, width: int, cache_dir: str | Path, expected: int) -> FrameFolder:
    """A video file's frames at height×width as JPEG files under <cache_dir>/frames/, extracted once.

    Reused while the file's size and modification time are unchanged; a crashed extraction leaves only a
    temp folder (removed by a later run). FFPError naming the cache folder when it cannot be written.
    """
    base = Path(cache_dir) / "frames"
    stem = re.sub(r"[^A-Za-z0-9_-]", "_", source.path.stem)
    folder = base / f"{stem}-{_cache_key(source, height, width)}"
    if (folder / MANIFEST).is_file():
        return FrameFolder(folder)
    try:
        base.mkdir(parents=True, exist_ok=True)
        _remove_stale(base, source.path.resolve())
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-{os.getpid()}-", dir=base))
    except OSError as exc:
        raise FFPError(f"--cache_dir {base}: cannot create the frame cache ({exc.strerror or exc})") from None
    progress = Progress(expected, f"extracting {source.path.name}", unit="frame", every=200)
    try:
        for i, (_, rgb) in enumerate(source.frames(height, width)):
            ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            (tmp / f"{i:06d}.jpg").write_bytes(jpeg.tobytes())
            progress.update()
        report = source.report()
        atomic_write_text(tmp / MANIFEST, json.dumps({"source": str(source.path.resolve()), "height": height,
                                                      "width": width, "file_version": _file_version(source.path),
                                                      **report.summary()}))
        shared_mode(tmp, directory=True)
        os.replace(tmp, folder)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if (folder / MANIFEST).is_file():   # another run extracted the same file meanwhile: use its frames
            return FrameFolder(folder)
        raise FFPError(f"--cache_dir {base}: cannot write the frame cache of {source.path} "
                       f"({exc.strerror or exc})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        progress.close()
    return FrameFolder(folder)


def _decode_all(video: Video, height: int, width: int, progress: Progress) -> np.ndarray:
    """Every frame of `video` as one n×H×W×3 uint8 array."""
    frames = []
    for _, rgb in video.source.frames(height, width):
        frames.append(rgb)
        progress.update()
    return np.stack(frames) if frames else np.zeros((0, height, width, 3), np.uint8)


class FrameStore:
    """Random access to the frames of training videos: per video a RAM array, or a frame folder read on demand.

    RAM when all frames fit `cache_max_gb` at the config size (and `cache_frames` is on); otherwise folders
    stay on disk and video files are extracted once into the frame cache (see `extracted_frames`).
    """

    def __init__(self, videos: list[Video], cfg: Config):
        self.height, self.width = cfg.height, cfg.width
        declared = [_declared_frames(v) for v in videos]
        self.in_ram = cfg.cache_frames and sum(declared) * cfg.height * cfg.width * 3 / 1e9 <= cfg.cache_max_gb
        self.readers: list[np.ndarray | FrameFolder] = []
        # extraction into the frame cache shows its own progress per file (extracted_frames)
        progress = Progress(sum(declared), "decoding training frames", unit="frame", every=500, enabled=self.in_ram)
        try:
            for video, n in zip(videos, declared):
                if self.in_ram:
                    self.readers.append(_decode_all(video, cfg.height, cfg.width, progress))
                elif isinstance(video.source, VideoFile):
                    self.readers.append(extracted_frames(video.source, cfg.height, cfg.width, cfg.cache_dir, n))
                else:
                    self.readers.append(video.source)
        finally:
            progress.close()
        self.lengths = [len(r) for r in self.readers]

    def clip(self, video: int, start: int, length: int) -> np.ndarray:
        """Frames start..start+length-1 of training video `video` as length×H×W×3 uint8 RGB."""
        reader = self.readers[video]
        if isinstance(reader, np.ndarray):
            return reader[start:start + length]
        return np.stack([reader.read(start + k, self.height, self.width) for k in range(length)])


class TrainWindows(Dataset):
    """Every (in_frames+1)-frame window of every training video (cut to --train_until when given).

    Item i -> uint8 tensor (T+1)×3×H×W (T input frames then the target), converted on the device.
    Building it decodes the training frames (see FrameStore) and checks each video holds one window.
    """

    def __init__(self, videos: list[Video], cfg: Config):
        self.window = cfg.in_frames + 1
        self.videos = videos
        self.store = FrameStore(videos, cfg)
        for video, n in zip(videos, self.store.lengths):
            if n < self.window:
                cut = f" before --train_until {cfg.train_until}" if cfg.train_until not in (None, "") else ""
                raise FFPError(f"{video.where} has {n} frames{cut}, shorter than the {self.window}-frame window "
                               f"(--in_frames {cfg.in_frames} + the predicted frame)")
        self.index = np.array([(v, s) for v, n in enumerate(self.store.lengths) for s in range(n - self.window + 1)],
                              dtype=np.int64).reshape(-1, 2)

    def decode_problems(self) -> list[str]:
        """'<video>: <problem>' for training video files that decoded with gaps or stopped early."""
        found = []
        for video in self.videos:
            report = video.source.report() if isinstance(video.source, VideoFile) else None
            found += [f"{video.where}: {p}" for p in (report.problems() if report else [])]
        return found

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> torch.Tensor:
        video, start = self.index[i]
        clip = self.store.clip(int(video), int(start), self.window)   # (T+1)×H×W×3
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
        per_rank = self.n // self.world          # drop the remainder so ranks never overlap and stay in step
        return perm[self.rank * per_rank:(self.rank + 1) * per_rank]

    def __iter__(self):
        per_rank = self.n // self.world
        epoch, skip = divmod(self.start, per_rank)
        while True:
            yield from self._epoch(epoch)[skip:].tolist()
            epoch, skip = epoch + 1, 0

    def __len__(self) -> int:  # nominal: one epoch
        return self.n // self.world


AUTO_WORKERS = 2   # what --num_workers -1 asks for when spare cores allow (GPU runs, machines with many cores)


def data_workers(requested: int, device: str | None) -> int:
    """DataLoader workers for --num_workers `requested` (an explicit count is used as given).

    -1 (auto) means AUTO_WORKERS, but when the networks run on the CPU no more than the cores torch's compute
    threads leave free: a worker on a core the OpenMP threads need stalls every parallel region (64×96
    evaluation on 2 cores: 0.71 s per video with 2 workers, 0.42 s with none; bench/README.md).
    """
    if requested >= 0:
        return requested
    if resolve_device(device).type != "cpu":
        return AUTO_WORKERS
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(AUTO_WORKERS, cores - torch.get_num_threads()))


def _leave_interrupts_to_main(_worker_id: int) -> None:
    """DataLoader worker start: leave the terminal's process group and ignore SIGINT, so neither Ctrl-C nor a
    SIGTERM sent to the whole group (`kill -- -PGID`, a job scheduler) reaches the workers: the main process stops
    on its own terms (training saves, detect.py --mode stream keeps what it scored) instead of dying on 'DataLoader
    worker … killed by signal'. The workers still end with their loader (and with the main process: torch's
    watchdog). SIGTERM keeps torch's own worker handler, installed before this runs."""
    try:
        os.setpgid(0, 0)
    except OSError:
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def train_loader(windows: TrainWindows, cfg: Config, start_step: int, rank: int = 0, world_size: int = 1) -> DataLoader:
    """DataLoader over training windows in the seeded order, resuming at `start_step`."""
    sampler = EpochShuffleSampler(len(windows), cfg.seed, start_step * cfg.batch_size, rank, world_size)
    workers = data_workers(cfg.num_workers, cfg.device)
    return DataLoader(windows, batch_size=cfg.batch_size, sampler=sampler, num_workers=workers,
                      pin_memory=torch.cuda.is_available(), drop_last=True,
                      persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None,
                      worker_init_fn=_leave_interrupts_to_main)


# ----------------------------------------------------------------------------------------------- testing

class FolderFrames(Dataset):
    """The frames of a frame folder in order, each decoded once: item i -> (3×H×W uint8 tensor, frame number i)."""

    def __init__(self, source: FrameFolder, height: int, width: int):
        self.source, self.height, self.width = source, height, width

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        frame = self.source.read(i, self.height, self.width)
        return torch.from_numpy(frame).permute(2, 0, 1).contiguous(), i


class FileFrames(IterableDataset):
    """A video file decoded in order: (B×3×H×W uint8, (B,) int64 frame numbers, DecodeReport on the last batch)."""

    def __init__(self, source: VideoFile, height: int, width: int, batch_size: int):
        self.source, self.height, self.width, self.batch_size = source, height, width, batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, DecodeReport | None]]:
        frames, numbers = [], []
        for number, rgb in self.source.frames(self.height, self.width):
            frames.append(rgb)
            numbers.append(number)
            if len(frames) == self.batch_size:
                yield _batch(frames), torch.tensor(numbers), None
                frames, numbers = [], []
        yield _batch(frames), torch.tensor(numbers, dtype=torch.int64), self.source.report()


def _batch(frames: list[np.ndarray]) -> torch.Tensor:
    """list of H×W×3 uint8 -> B×3×H×W uint8 tensor (B may be 0)."""
    if not frames:
        return torch.zeros((0, 3, 1, 1), dtype=torch.uint8)
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()


class FrameBatches:
    """Ordered uint8 B×3×H×W batches of one video's frames, each frame decoded once.

    Iterating fills `numbers` (a compact int64 array, 8 bytes a frame) with the frame numbers of the frames
    yielded so far (true source numbers for video files, positions for folders) and, for video files, sets
    `report` once the end is reached. Frame
    folders are decoded by DataLoader workers where `workers` > 0; video files by one worker at most
    (decoding is sequential).
    """

    def __init__(self, video: Video, height: int, width: int, batch_size: int, workers: int = 0):
        self.source = video.source
        self.height, self.width, self.batch_size, self.workers = height, width, batch_size, workers
        self.numbers = array.array("q")
        self.report: DecodeReport | None = None

    def __iter__(self) -> Iterator[torch.Tensor]:
        self.numbers, self.report = array.array("q"), None
        pin = torch.cuda.is_available()
        if isinstance(self.source, FrameFolder):
            loader = DataLoader(FolderFrames(self.source, self.height, self.width), batch_size=self.batch_size,
                                shuffle=False, num_workers=self.workers, pin_memory=pin,
                                worker_init_fn=_leave_interrupts_to_main)
            for frames, numbers in loader:
                self.numbers.extend(numbers.tolist())
                yield frames
            return
        loader = DataLoader(FileFrames(self.source, self.height, self.width, self.batch_size), batch_size=None,
                            num_workers=min(self.workers, 1), pin_memory=pin, worker_init_fn=_leave_interrupts_to_main)
        for frames, numbers, report in loader:
            if report is not None:
                self.report = report
            if len(numbers):
                self.numbers.extend(numbers.tolist())
                yield frames


def video_frame_batches(video: Video, cfg: Config, batch_size: int, workers: int | None = None) -> FrameBatches:
    """FrameBatches of `video` at the config size; `workers` None: from cfg.num_workers via `data_workers`."""
    workers = data_workers(cfg.num_workers, cfg.device) if workers is None else workers
    return FrameBatches(video, cfg.height, cfg.width, batch_size, workers)
