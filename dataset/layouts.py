"""Finding a dataset on disk: which folders hold its training and test videos, and its labels and masks.

A video is a folder of frames or a video file, in every layout. Layouts tried for a dataset folder <ds>
(the first whose training split exists wins):
  frames        <ds>/{training,testing}/frames/<video>      the FFP release of Ped1/Ped2/Avenue/ShanghaiTech
  shanghaitech  <ds>/training/videos/<video>.avi  + <ds>/testing/frames/<video>/   the official ShanghaiTech download
  avenue        <ds>/training_videos/<NN>.avi     + <ds>/testing_videos/<NN>.avi   the official CUHK Avenue download
  flat          <ds>/{training,testing}/<video>     the FFP layout without frames/, and your own data
  ucsd          <ds>/{Train,Test}/<video>           the original UCSD release (Train001/, Test001/ of .tif)
<ds> is <root>/<name> (also <root>/UCSD<name> and <root> itself for the built-in benchmarks). Any other
--dataset name is your own data at <root>/<name>/ (flat layout): training/ holds normal videos, testing/
is optional and its labels are optional. Label and mask folders are never taken for videos.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from utils import FFPError

from . import labels as L
from .sources import (IMAGE_EXTS, FrameFolder, FrameSource, VideoFile, is_junk, is_video_file,
                      list_images, natural_key)

BENCHMARKS = ("ped1", "ped2", "avenue", "shanghaitech", "synthetic")
# Sub-folders of a split that hold labels, masks or other splits, never videos.
NOT_VIDEO_DIRS = {"frames", "videos", "test_frame_mask", "test_pixel_mask", "testing_label_mask",
                  "ucsd_pixel_masks", "pixel_masks", "ground_truth_demo", "labels", "masks", "__macosx"}


@dataclass
class Video:
    """One video: where its frames come from, and for test videos its 0/1 frame labels and pixel masks."""
    name: str
    source: FrameSource
    labels: np.ndarray | None = None        # (n_frames,) int64 0/1, or None (training / unlabelled)
    masks: L.MaskSource | None = None       # one pixel mask per frame, or None

    def __len__(self) -> int:
        return len(self.source)

    @property
    def where(self) -> str:
        """'video folder <path>' or 'video file <path>', for messages."""
        return f"{self.source.kind} {self.source.path}"

    def head(self, n: int) -> "Video":
        """The same video cut to its frames numbered below n (labels cut alike)."""
        source = self.source.head(n)
        return Video(self.name, source, None if self.labels is None else self.labels[:len(source)], self.masks)


@dataclass
class DatasetFiles:
    """Everything found on disk for one dataset. `label_source` says where test labels came from ('' = none)."""
    name: str
    root: Path
    layout: str
    train: list[Video] = field(default_factory=list)
    test: list[Video] = field(default_factory=list)
    label_source: str = ""
    notes: L.LabelNotes = field(default_factory=L.LabelNotes)

    @property
    def labelled(self) -> bool:
        """Every test video has labels (there is at least one test video)."""
        return bool(self.test) and all(v.labels is not None for v in self.test)

    def why_no_auc(self, in_frames: int) -> str | None:
        """Why no frame-level AUC can be computed on the test videos (None when it can): no test videos, no frame
        labels, or one class only among the scored frames (the first `in_frames` of each video are not scored)."""
        if not self.test:
            return f"{self.name} has no test videos"
        if not self.labelled:
            return f"no frame labels were found for the test videos of {self.name} in {self.root}"
        values = np.concatenate(list(scored_labels(self.test, in_frames).values()))
        if values.size == 0 or values.min() == values.max():
            return (f"every scored test frame of {self.name} is labelled "
                    f"{'abnormal' if values.size and values[0] else 'normal'}")
        return None


def scored_labels(videos: list[Video], in_frames: int) -> dict[str, np.ndarray]:
    """{name: labels of the predicted frames}: the first `in_frames` frames of a video have no prediction."""
    return {v.name: v.labels[in_frames:] for v in videos}


# ----------------------------------------------------------------------------------------------- splits
def _is_video_dir(path: Path) -> bool:
    return path.is_dir() and not is_junk(path) and path.name.lower() not in NOT_VIDEO_DIRS \
        and not path.name.endswith("_gt")


def split_videos(split_dir: Path) -> list[Video]:
    """The videos of one split folder: its frame folders, or its video files, or the folder itself when it
    directly holds frames. FFPError for a folder that mixes files and frame folders or an empty video folder."""
    entries = sorted((p for p in split_dir.iterdir() if not is_junk(p)), key=natural_key)
    folders = [p for p in entries if _is_video_dir(p)]
    files = [p for p in entries if is_video_file(p) and not p.stem.endswith("_gt")]   # *_gt: mask videos
    if folders and files:
        raise FFPError(f"split folder {split_dir} mixes video files ({', '.join(p.name for p in files[:3])}) and "
                       f"frame folders ({', '.join(p.name for p in folders[:3])}): keep one kind per folder")
    if files:
        return [Video(p.stem, VideoFile(p)) for p in files]
    videos = []
    for folder in folders:
        frames = list_images(folder)
        if not frames:
            raise FFPError(f"video folder {folder} has no frames ({', '.join(IMAGE_EXTS)})")
        videos.append(Video(folder.name, FrameFolder(folder, frames)))
    if not videos and list_images(split_dir):
        videos.append(Video(split_dir.name, FrameFolder(split_dir)))
    return videos


def _layouts(dsdir: Path) -> list[tuple[str, Path, Path]]:
    """(layout name, training split, test split) candidates of a dataset folder, in the order tried."""
    return [("frames", dsdir / "training" / "frames", dsdir / "testing" / "frames"),
            ("shanghaitech", dsdir / "training" / "videos", dsdir / "testing" / "frames"),
            ("avenue", dsdir / "training_videos", dsdir / "testing_videos"),
            ("flat", dsdir / "training", dsdir / "testing"),
            ("ucsd", dsdir / "Train", dsdir / "Test")]


def dataset_dirs(root: Path, name: str) -> list[Path]:
    """Folders that may hold dataset `name`: <root>/<name>, and for benchmarks <root>/UCSD<name> and <root>."""
    if name not in BENCHMARKS:
        return [root / name]
    return list(dict.fromkeys([root / name, root / f"UCSD{name}", root / f"UCSD{name.capitalize()}", root]))


def find_dataset(root: str | Path, name: str, with_labels: bool = True) -> DatasetFiles:
    """Locate dataset `name` under `root`, list its videos and (with_labels) read and check its test labels.

    Raises FFPError naming the folders looked in when nothing matches, and for any bad label or mask.
    """
    root = Path(root)
    if not root.is_dir():
        raise FFPError(f"--data_root {root} does not exist (expected a folder holding {name}/)")
    candidates = dataset_dirs(root, name)
    for dsdir in candidates:
        for layout, train_dir, test_dir in _layouts(dsdir):
            if not train_dir.is_dir():
                continue
            train = split_videos(train_dir)
            if not train:
                continue
            test = split_videos(test_dir) if test_dir.is_dir() else []
            files = DatasetFiles(name, dsdir, layout, train, test)
            if with_labels:
                attach_labels(files)
            return files
    if name not in BENCHMARKS:
        raise FFPError(f"dataset {name!r} is not a built-in benchmark ({', '.join(BENCHMARKS)}), so it is read as "
                       f"your own data from {root / name}/training/ (a folder of video files or frame folders), "
                       f"which {'holds no videos' if (root / name / 'training').is_dir() else 'does not exist'}")
    raise FFPError(f"dataset {name!r} not found under {root}: looked for training videos (frame folders or "
                   f"video files) in <dir>/training[/frames|/videos]/, <dir>/training_videos/ or <dir>/Train/ with "
                   f"<dir> one of {', '.join(map(str, candidates))}")


# ----------------------------------------------------------------------------------------------- labels
def attach_labels(files: DatasetFiles) -> None:
    """Attach pixel masks and frame labels to the test videos, checking every count and value now."""
    if not files.test:
        return
    _attach_masks(files)
    found = _label_entries(files)
    if found is None:
        return
    source, entries, reader = found
    files.label_source = str(source)
    if isinstance(entries, list):
        if len(entries) != len(files.test):
            raise FFPError(f"label file {source} lists {len(entries)} test videos but {len(files.test)} were found "
                           f"in {files.root}")
        pairs = list(zip(files.test, entries, [source] * len(entries)))
    else:
        by_name = {L.canonical(k): v for k, v in entries.items()}
        missing = [v.name for v in files.test if L.canonical(v.name) not in by_name]
        if missing:
            raise FFPError(f"no labels for test video(s) {', '.join(missing[:5])} of {files.name} in {source}")
        pairs = []
        for video in files.test:
            value = by_name[L.canonical(video.name)]
            value, where = value if isinstance(value, tuple) else (value, source)
            pairs.append((video, value, where))
    for video, entry, where in pairs:
        text = f"test video {video.name} (labels {where}, frames in {video.where}{_decode_note(video)})"
        video.labels = reader(entry, len(video), text, files.notes)


def _decode_note(video: Video) -> str:
    """'; decoding found: …' for a damaged video file (so a count mismatch explains itself), else ''."""
    report = video.source.report()
    return f"; decoding found: {'; '.join(report.problems())}" if report and report.problems() else ""


def _label_entries(files: DatasetFiles):
    """(where, entries, reader) of the first label source found (module docstring of dataset.labels), or None.

    entries: a list in test-video order, or {video name: entry or (entry, file)}; reader turns one entry into
    checked 0/1 labels: `entry_labels` (intervals or per-frame), `interval_labels`, `row_interval_labels` (labels.csv) or `frame_labels`.
    """
    root, notes, n_test = files.root, files.notes, len(files.test)
    for mat in dict.fromkeys((root / f"{files.name}.mat", root / f"{root.name}.mat")):
        if mat.is_file():
            return mat, L.read_mat_entries(mat, n_test, notes), L.entry_labels
    for folder in (root / "testing" / "test_frame_mask", root / "test_frame_mask"):
        if folder.is_dir():
            return folder, L.read_frame_mask_dir(folder), L.frame_labels
    for folder in (root / "testing_label_mask", root / "testing" / "testing_label_mask",
                   root / "ground_truth_demo" / "testing_label_mask"):
        if folder.is_dir():
            return folder, L.read_avenue_dir(folder), L.frame_labels
    # Only the official UCSD label scripts (UCSDped1.m, UCSDped2.m): any other .m is someone's MATLAB code.
    m_files = sorted(p for p in list(root.glob("*.m")) + list((root / "Test").glob("*.m"))
                     if p.name.lower().startswith("ucsd") and not is_junk(p))
    if m_files:
        return m_files[0], L.read_ucsd_m_entries(m_files[0]), L.interval_labels
    for csv_path in (root / "testing" / "labels.csv", root / "labels.csv"):
        if csv_path.is_file():
            return csv_path, L.read_interval_csv(csv_path, [v.name for v in files.test]), L.row_interval_labels
    if all(v.masks is not None for v in files.test):
        return Path("pixel masks"), {v.name: L.labels_from_masks(v.masks) for v in files.test}, L.frame_labels
    return None


def _attach_masks(files: DatasetFiles) -> None:
    """Pixel masks for the test videos: UCSD TestNNN_gt folders or mask videos (by position), or ShanghaiTech
    test_pixel_mask/*.npy."""
    gt_dirs = L.mask_image_dirs(files.root)
    if gt_dirs and len(gt_dirs) == len(files.test):
        for video, gt_dir in zip(files.test, gt_dirs):
            video.masks = L.mask_images(gt_dir)
    npy_dir = files.root / "testing" / "test_pixel_mask"
    if npy_dir.is_dir():
        arrays = {L.canonical(p.stem): p for p in npy_dir.glob("*.npy") if not is_junk(p)}
        if all(L.canonical(v.name) in arrays for v in files.test):
            for video in files.test:
                video.masks = L.MaskArray(arrays[L.canonical(video.name)])
    for video in files.test:
        if video.masks is not None and len(video.masks) != len(video):
            raise FFPError(f"pixel masks {video.masks.where}: {len(video.masks)} masks but test video {video.name} "
                           f"has {len(video)} frames ({video.where})")


def check_lengths(videos: list[Video], window: int, in_frames: int) -> None:
    """FFPError naming the first video shorter than one window (in_frames + the predicted frame)."""
    for video in videos:
        if len(video) < window:
            raise FFPError(f"{video.where} has {len(video)} frames, shorter than the {window}-frame window "
                           f"(--in_frames {in_frames} + the predicted frame)")
