"""Finding datasets on disk, reading frames and labels, and serving 5-frame windows.

Supported layouts under `<data_root>` (the first that matches wins; see `find_dataset`):
  A. <root>/<ds>/{training,testing}/frames/<video>/*.jpg      (Ped2/Ped1/Avenue/ShanghaiTech as FFP uses them)
  B. <root>/<ds>/{training,testing}/<video>/*.jpg            (the same without the frames/ level)
  C. <root>/UCSD<ds>/{Train/Train001, Test/Test001}/*.tif    (the original UCSD release; also <root>/<ds>/Train…)
Frame labels (1 = abnormal), per test video:
  - <dsdir>/<ds>.mat, variable `gt`: per video a 2×K array of 1-based inclusive [start; end] intervals;
  - <dsdir>/testing/test_frame_mask/<video>.npy (ShanghaiTech), one 0/1 per frame;
  - <dsdir>/testing_label_mask/<N>_label.mat (CUHK Avenue), `volLabel`: one mask per frame, abnormal if any pixel;
  - UCSD<ds>.m (lines `TestVideoFile{end+1}.gt_frame = [61:180];`) or TestNNN_gt/*.bmp|png pixel masks.
Frames are read with OpenCV, converted to RGB (gray repeated to 3 channels), resized to the config size, and
kept as uint8 until the batch reaches the device, where `to_network_range` maps them to [-1, 1].
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import scipy.io
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from config import Config
from utils import FFPError, resolve_device

_cv_log = cv2.utils.logging   # OpenCV's C++ log level (its decoders log errors to stderr)

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
MASK_EXTS = (".bmp", ".png")


@dataclass
class Video:
    """One video: its frame files in order, and for test videos the 0/1 frame labels and pixel-mask files."""
    name: str
    frames: list[Path]
    labels: np.ndarray | None = None        # (n_frames,) int64 0/1, or None (training / unlabeled)
    masks: list[Path] | None = None         # one mask file per frame, or None

    def __len__(self) -> int:
        return len(self.frames)


def scored_labels(videos: list[Video], in_frames: int) -> dict[str, np.ndarray]:
    """{name: labels of the predicted frames}: the first `in_frames` frames of a video have no prediction."""
    return {v.name: v.labels[in_frames:] for v in videos}


@dataclass
class DatasetFiles:
    """Everything found on disk for one dataset."""
    name: str
    root: Path
    layout: str
    train: list[Video] = field(default_factory=list)
    test: list[Video] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------- frames
def _natural_key(path: Path) -> list:
    """Sort 'frame2' before 'frame10'."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def list_images(folder: Path, exts: tuple[str, ...] = IMAGE_EXTS) -> list[Path]:
    """Image files of a folder in natural order."""
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in exts and p.is_file()), key=_natural_key)


def prepare_frame(bgr: np.ndarray, height: int, width: int) -> np.ndarray:
    """One decoded OpenCV frame (H0×W0×3 BGR uint8) -> height×width×3 uint8 RGB, as every model input.

    Shared by image files (`read_frame`) and decoded video files (detect.py), so both see identical
    preprocessing. INTER_AREA when shrinking (no aliasing), bilinear when enlarging.
    """
    h, w = bgr.shape[:2]
    if (h, w) != (height, width):
        shrink = h * w > height * width
        bgr = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


_JPEG_TAIL = 4096   # FF D9 cannot occur inside entropy-coded data (0xFF is byte-stuffed), so this is safe


def _check_complete(data: bytes, path: str | Path) -> None:
    """Refuse a JPEG/PNG/BMP whose end is missing (a truncated copy or download), naming the file.

    Decoders accept such files silently (a JPEG decodes to a half-grey image) or print C-level warnings,
    so the end of the file is checked first: JPEG end-of-image marker FF D9 near the end (a little trailing
    padding is tolerated), PNG IEND chunk, BMP header size <= file size. A cheap byte test, no decoding.
    """
    if data[:3] == b"\xff\xd8\xff":
        if b"\xff\xd9" not in data[-_JPEG_TAIL:]:
            raise FFPError(f"cannot read image {path}: truncated JPEG ({len(data)} bytes, no end-of-image "
                           f"marker); re-extract or replace this frame")
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        if b"IEND" not in data[-64:]:
            raise FFPError(f"cannot read image {path}: truncated PNG ({len(data)} bytes, no IEND chunk); "
                           f"re-extract or replace this frame")
    elif data[:2] == b"BM" and len(data) >= 6:
        expected = int.from_bytes(data[2:6], "little")
        if len(data) < expected:
            raise FFPError(f"cannot read image {path}: truncated BMP ({len(data)} of {expected} bytes); "
                           f"re-extract or replace this frame")


def read_frame(path: str | Path, height: int, width: int) -> np.ndarray:
    """Read one image as H×W×3 uint8 RGB resized to (height, width); FFPError naming the file if unreadable.

    Missing, unreadable, empty, truncated (JPEG/PNG/BMP, see `_check_complete`) and undecodable files are
    refused with one message naming the file; OpenCV's own C-level log lines are silenced while decoding
    so the user sees only that message. Every frame is resized to the config size, so frames of different
    sizes in one video are made consistent (not refused). INTER_AREA when shrinking (no aliasing),
    bilinear when enlarging.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise FFPError(f"cannot read image {path}: {exc.strerror or exc}") from None
    if not data:
        raise FFPError(f"cannot read image {path}: the file is empty (0 bytes)")
    _check_complete(data, path)
    previous = _cv_log.getLogLevel()
    _cv_log.setLogLevel(_cv_log.LOG_LEVEL_SILENT)
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    finally:
        _cv_log.setLogLevel(previous)
    if image is None:
        raise FFPError(f"cannot read image {path}: not a valid image file (corrupt or unsupported format)")
    return prepare_frame(image, height, width)


def to_network_range(frames: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] (any shape) -> float32 in [-1, 1], on the tensor's device."""
    return frames.float().div_(127.5).sub_(1.0)


# ----------------------------------------------------------------------------------------------- labels
def intervals_to_labels(intervals: np.ndarray, n_frames: int, where: str) -> np.ndarray:
    """2×K (or squeezed (2,)) 1-based inclusive [start; end] intervals -> (n_frames,) int64 0/1 labels."""
    arr = np.asarray(intervals, dtype=np.int64)
    if arr.size == 0:
        return np.zeros(n_frames, dtype=np.int64)
    arr = arr.reshape(2, -1)
    labels = np.zeros(n_frames, dtype=np.int64)
    for start, end in arr.T:
        if not 1 <= start <= end <= n_frames:
            raise FFPError(f"{where}: interval [{start}, {end}] is outside the video's {n_frames} frames")
        labels[start - 1:end] = 1
    return labels


def read_mat_intervals(mat_path: Path) -> list[np.ndarray]:
    """`gt` cell of a <ds>.mat file -> one interval array per test video (in video order)."""
    try:
        mat = scipy.io.loadmat(str(mat_path), squeeze_me=True)
    except Exception as exc:  # scipy raises many types for a bad file
        raise FFPError(f"cannot read label file {mat_path}: {exc}") from None
    if "gt" not in mat:
        keys = [k for k in mat if not k.startswith("__")]
        raise FFPError(f"label file {mat_path} has no variable 'gt' (found: {', '.join(keys) or 'none'})")
    gt = mat["gt"]
    if gt.dtype == object:
        return list(np.atleast_1d(gt))
    return [gt]  # a single test video squeezes the cell away


def read_ucsd_m_intervals(m_path: Path) -> list[np.ndarray]:
    """Official UCSDpedN.m -> one 2×K interval array per test video.

    Lines look like `TestVideoFile{end+1}.gt_frame = [61:180];` or `[1:3, 6:8]`.
    """
    result = []
    for line in m_path.read_text(errors="replace").splitlines():
        if "gt_frame" not in line:
            continue
        pairs = re.findall(r"(\d+)\s*:\s*(\d+)", line)
        if not pairs:
            raise FFPError(f"{m_path}: cannot parse interval line {line.strip()!r}")
        result.append(np.array(pairs, dtype=np.int64).T)
    if not result:
        raise FFPError(f"{m_path}: no 'gt_frame' lines found")
    return result


def labels_from_masks(mask_files: list[Path]) -> np.ndarray:
    """A frame is abnormal exactly when its pixel mask has any nonzero pixel."""
    labels = []
    for path in mask_files:
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise FFPError(f"cannot read mask {path}")
        labels.append(int(mask.any()))
    return np.array(labels, dtype=np.int64)


def read_shanghaitech_labels(mask_dir: str | Path) -> dict[str, np.ndarray]:
    """ShanghaiTech `test_frame_mask/<video>.npy` files -> {video: (n,) int64 0/1}."""
    mask_dir = Path(mask_dir)
    files = sorted(mask_dir.glob("*.npy"))
    if not files:
        raise FFPError(f"no <video>.npy label files in {mask_dir}")
    return {f.stem: np.load(f, allow_pickle=False).astype(np.int64).ravel() for f in files}


def read_avenue_labels(mask_dir: str | Path) -> dict[str, np.ndarray]:
    """CUHK Avenue `testing_label_mask/<N>_label.mat` (`volLabel`, one mask per frame) -> {'NN': labels}.

    Video names are zero-padded to two digits ('1_label.mat' -> '01') to match the frame folders.
    """
    mask_dir = Path(mask_dir)
    files = sorted(mask_dir.glob("*_label.mat"), key=_natural_key)
    if not files:
        raise FFPError(f"no <N>_label.mat files in {mask_dir}")
    labels = {}
    for f in files:
        try:
            vol = scipy.io.loadmat(str(f), squeeze_me=True)
        except Exception as exc:
            raise FFPError(f"cannot read label file {f}: {exc}") from None
        if "volLabel" not in vol:
            raise FFPError(f"label file {f} has no variable 'volLabel'")
        masks = np.atleast_1d(vol["volLabel"])
        labels[f"{int(f.name.split('_')[0]):02d}"] = np.array([int(np.any(m)) for m in masks], dtype=np.int64)
    return labels


# ----------------------------------------------------------------------------------------------- layouts
NOT_VIDEO_DIRS = {"frames", "test_frame_mask", "testing_label_mask", "UCSD_pixel_masks", "pixel_masks"}


def _video_dirs(split_dir: Path) -> list[Path]:
    """Video sub-folders of a split folder (label/mask folders excluded), in natural order."""
    return sorted((d for d in split_dir.iterdir()
                   if d.is_dir() and not d.name.endswith("_gt") and d.name not in NOT_VIDEO_DIRS
                   and not d.name.startswith(".")), key=_natural_key)


def _videos_in(split_dir: Path) -> list[Video]:
    """Video folders under a split folder; an empty video folder is an error naming it."""
    videos = []
    for d in _video_dirs(split_dir):
        frames = list_images(d)
        if not frames:
            raise FFPError(f"video folder {d} has no frames ({', '.join(IMAGE_EXTS)})")
        videos.append(Video(d.name, frames))
    return videos


def _candidate_dirs(root: Path, name: str) -> list[Path]:
    """Folders that may hold dataset `name`: <root>/<name>, <root>/UCSD<name>, <root> itself."""
    return [root / name, root / f"UCSD{name}", root / f"UCSD{name.capitalize()}", root]


def find_dataset(root: str | Path, name: str) -> DatasetFiles:
    """Locate dataset `name` under `root`, list its videos and read the test labels.

    Raises FFPError listing what was looked for when nothing matches.
    """
    root = Path(root)
    if not root.is_dir():
        raise FFPError(f"--data_root {root} does not exist (expected a folder holding {name}/)")
    candidates = list(dict.fromkeys(_candidate_dirs(root, name)))   # UCSDped2 / UCSDPed2 may coincide
    empty = []
    for dsdir in candidates:
        for layout, train_dir, test_dir in (("frames", dsdir / "training" / "frames", dsdir / "testing" / "frames"),
                                            ("flat", dsdir / "training", dsdir / "testing"),
                                            ("ucsd", dsdir / "Train", dsdir / "Test")):
            if train_dir.is_dir() and test_dir.is_dir():
                if _video_dirs(test_dir):
                    files = DatasetFiles(name, dsdir, layout, _videos_in(train_dir), _videos_in(test_dir))
                    _attach_labels(files)
                    return files
                empty.append(str(test_dir))
    hint = f" ({', '.join(empty)} holds no video folders)" if empty else ""
    raise FFPError(f"dataset {name!r} not found under {root}: looked for training and test video folders "
                   f"<dir>/{{training,testing}}/frames/<video>/, <dir>/{{training,testing}}/<video>/ or "
                   f"<dir>/{{Train,Test}}/<video>/ with <dir> one of {', '.join(map(str, candidates))}{hint}")


def _attach_labels(files: DatasetFiles) -> None:
    """Find the label source for the test videos and attach labels (and pixel masks when present)."""
    _attach_masks(files)
    labels, source = _read_labels(files)
    if labels is None:
        raise FFPError(f"no frame labels found for {files.name} in {files.root}: expected {files.name}.mat, "
                       f"testing/test_frame_mask/*.npy, testing_label_mask/*_label.mat, UCSD*.m or *_gt masks")
    if isinstance(labels, list):  # per-video interval arrays, in video order
        if len(labels) != len(files.test):
            raise FFPError(f"label file {source} lists {len(labels)} test videos but {len(files.test)} were "
                           f"found in {files.root}")
        for video, intervals in zip(files.test, labels):
            try:
                video.labels = intervals_to_labels(intervals, len(video), f"{files.name} test video {video.name}")
            except FFPError as exc:
                raise FFPError(f"{exc} (labels from {source}, frames in {video.frames[0].parent})") from None
    else:
        for video in files.test:
            if video.name not in labels:
                raise FFPError(f"no labels for test video {video.name} of {files.name} in {source}")
            video.labels = labels[video.name]
    for video in files.test:
        if len(video.labels) != len(video):
            per_video = sorted(Path(source).glob(f"{video.name}.*")) if Path(source).is_dir() else []
            raise FFPError(f"{files.name} test video {video.name}: {len(video.labels)} labels but "
                           f"{len(video)} frames (labels from {per_video[0] if per_video else source}, frames in "
                           f"{video.frames[0].parent})")


def _read_labels(files: DatasetFiles) -> tuple[list[np.ndarray] | dict[str, np.ndarray] | None, str]:
    """(labels, where they came from) from the first label source that exists (module docstring), or (None, '')."""
    root, name = files.root, files.name
    for mat in (root / f"{name}.mat", root / f"{root.name}.mat"):
        if mat.is_file():
            return read_mat_intervals(mat), str(mat)
    for npy_dir in (root / "testing" / "test_frame_mask", root / "test_frame_mask"):
        if npy_dir.is_dir():
            return read_shanghaitech_labels(npy_dir), str(npy_dir)
    for avenue_dir in (root / "testing_label_mask", root / "testing" / "testing_label_mask"):
        if avenue_dir.is_dir():
            return read_avenue_labels(avenue_dir), str(avenue_dir)
    m_files = sorted(root.glob("*.m")) + sorted((root / "Test").glob("*.m"))
    if m_files:
        return read_ucsd_m_intervals(m_files[0]), str(m_files[0])
    if files.test and all(v.masks for v in files.test):
        return {v.name: labels_from_masks(v.masks) for v in files.test}, "the TestNNN_gt pixel masks"
    return None, ""


def _mask_dirs(files: DatasetFiles) -> list[Path]:
    """Where UCSD-style pixel masks live: testing/UCSD_pixel_masks/ or Test/ (folders TestNNN_gt)."""
    return [files.root / "testing" / "UCSD_pixel_masks", files.root / "Test"]


def _attach_masks(files: DatasetFiles) -> None:
    """Attach TestNNN_gt pixel-mask files to test videos (by position, 1-based), when present for all."""
    for base in _mask_dirs(files):
        gt_dirs = sorted(base.glob("Test*_gt"), key=_natural_key) if base.is_dir() else []
        if gt_dirs and len(gt_dirs) == len(files.test):
            for video, gt_dir in zip(files.test, gt_dirs):
                video.masks = list_images(gt_dir, MASK_EXTS)
                if len(video.masks) != len(video):
                    raise FFPError(f"{gt_dir}: {len(video.masks)} masks but test video {video.name} has "
                                   f"{len(video)} frames")
            return


def prepare_dataset(cfg: Config) -> DatasetFiles:
    """Find the configured dataset, generating the synthetic one on first use."""
    if cfg.dataset == "synthetic":
        from synthetic import ensure_synthetic
        Path(cfg.data_root).mkdir(parents=True, exist_ok=True)
        ensure_synthetic(cfg.data_root, seed=0)
    files = find_dataset(cfg.data_root, cfg.dataset)
    window = cfg.in_frames + 1
    for video in files.train + files.test:
        if len(video) < window:
            raise FFPError(f"video folder {video.frames[0].parent} has {len(video)} frames, shorter than the "
                           f"{window}-frame window (--in_frames {cfg.in_frames} + the predicted frame)")
    return files


# ----------------------------------------------------------------------------------------------- training
class FrameStore:
    """Decodes frames on demand, or once into one shared uint8 array when `cache` is on (fork-shared by workers)."""

    def __init__(self, paths: list[Path], height: int, width: int, cache: bool):
        self.paths, self.height, self.width = paths, height, width
        self.cache = None
        if cache:
            self.cache = np.stack([read_frame(p, height, width) for p in paths])

    def __getitem__(self, i: int) -> np.ndarray:
        """Frame i as H×W×3 uint8 RGB."""
        if self.cache is not None:
            return self.cache[i]
        return read_frame(self.paths[i], self.height, self.width)


class TrainWindows(Dataset):
    """Every (in_frames+1)-frame window of every training video.

    Item i -> uint8 tensor (T+1)×3×H×W (T input frames then the target), converted on the device.
    """

    def __init__(self, videos: list[Video], cfg: Config):
        paths = [p for v in videos for p in v.frames]
        window = cfg.in_frames + 1
        offsets = np.cumsum([0] + [len(v) for v in videos])
        self.starts = np.concatenate([np.arange(o, o + len(v) - window + 1) for o, v in zip(offsets, videos)])
        self.window = window
        budget = len(paths) * cfg.height * cfg.width * 3 / 1e9
        self.store = FrameStore(paths, cfg.height, cfg.width, cfg.cache_frames and budget <= cfg.cache_max_gb)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> torch.Tensor:
        start = int(self.starts[i])
        clip = np.stack([self.store[start + k] for k in range(self.window)])   # (T+1)×H×W×3
        return torch.from_numpy(clip).permute(0, 3, 1, 2).contiguous()


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


def train_loader(windows: TrainWindows, cfg: Config, start_step: int, rank: int = 0, world_size: int = 1) -> DataLoader:
    """DataLoader over training windows in the seeded order, resuming at `start_step`."""
    sampler = EpochShuffleSampler(len(windows), cfg.seed, start_step * cfg.batch_size, rank, world_size)
    workers = data_workers(cfg.num_workers, cfg.device)
    return DataLoader(windows, batch_size=cfg.batch_size, sampler=sampler, num_workers=workers,
                      pin_memory=torch.cuda.is_available(), drop_last=True,
                      persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None)


# ----------------------------------------------------------------------------------------------- testing
class FrameFiles(Dataset):
    """The frames of one video in order, each decoded once: item i -> 3×H×W uint8 tensor."""

    def __init__(self, paths: list[Path], height: int, width: int):
        self.paths, self.height, self.width = paths, height, width

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(read_frame(self.paths[i], self.height, self.width)).permute(2, 0, 1).contiguous()


def video_frame_batches(video: Video, cfg: Config, batch_size: int, workers: int | None = None) -> DataLoader:
    """Ordered uint8 batches B×3×H×W of one video's frames, decoded in worker processes.

    `workers` None: from cfg.num_workers via `data_workers`."""
    workers = data_workers(cfg.num_workers, cfg.device) if workers is None else workers
    return DataLoader(FrameFiles(video.frames, cfg.height, cfg.width), batch_size=batch_size, shuffle=False,
                      num_workers=workers, pin_memory=torch.cuda.is_available())
