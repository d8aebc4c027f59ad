"""Frame labels and pixel masks of test videos: read from every format people save, checked when loaded.

Frame labels end up as one (n_frames,) int64 array of 0/1 per test video (1 = abnormal). Sources, in the
order `layouts._label_entries` looks for them under the dataset folder <ds>:
  <ds>/<ds>.mat               variable `gt` (or another common name, or the file's only variable): a cell
                              with one entry per test video, in video order; an entry is either intervals
                              (2×K official: columns [start; end], 1-based inclusive; K×2 one interval per
                              row; a single [start end]) or one 0/1 label per frame. MATLAB v7.3 (HDF5)
                              files are read with h5py.
  <ds>/testing/test_frame_mask/<video>.npy|.csv|.txt   one label per frame (ShanghaiTech)
  <ds>/[ground_truth_demo/]testing_label_mask/<N>_label.mat   `volLabel`, a pixel mask per frame (CUHK Avenue)
  <ds>/[Test/]UCSD<ds>.m      lines `TestVideoFile{end+1}.gt_frame = [61:180];` (official UCSD)
  <ds>/testing/labels.csv     rows `video,start,end` (1-based inclusive; videos not listed are all normal)
  TestNNN_gt/ pixel-mask images (UCSD): a frame is abnormal when its mask has a nonzero pixel.
Per-frame values may be 0/1, bool, or 0/255 (nonzero = abnormal, said once); anything else is refused.
Intervals must be whole numbers, 1-based, start <= end, inside the video and not overlapping. Every
refusal is one FFPError naming the file and the video; nothing is computed before the labels pass.

Pixel masks (for pixel AUROC): UCSD `TestNNN_gt/*.bmp|png` image folders, or ShanghaiTech
`testing/test_pixel_mask/<video>.npy` arrays (n_frames×H×W, nonzero = abnormal).
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import scipy.io

from utils import FFPError

from .sources import decode_image, is_junk, list_images, natural_key

MASK_EXTS = (".bmp", ".png")
# Variable names people give frame-label arrays in .mat files, tried in this order.
MAT_LABEL_NAMES = ("gt", "GT", "gt_frame", "frame_gt", "frame_labels", "frame_label", "labels", "label",
                   "ground_truth", "groundtruth", "gt_frames")


@dataclass
class LabelNotes:
    """Readings worth telling the user once (printed at start by the CLIs), e.g. 0/255 labels, 2×2 intervals."""
    lines: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        """Record one note (a repeated note is kept once)."""
        if text not in self.lines:
            self.lines.append(text)


# ----------------------------------------------------------------------------------------------- values
def _whole_numbers(arr: np.ndarray, where: str, what: str) -> np.ndarray:
    """int64 copy of `arr`, FFPError when it holds NaN or non-integers (e.g. 2.5)."""
    if arr.dtype == bool:
        return arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.number):
        raise FFPError(f"{where}: {what} must be numbers, found {arr.dtype} values")
    if np.issubdtype(arr.dtype, np.floating):
        bad = arr[~np.isfinite(arr) | (arr != np.round(arr))]
        if bad.size:
            raise FFPError(f"{where}: {what} must be whole numbers, found {bad[:3].tolist()}")
    return arr.astype(np.int64)


def frame_labels(values, n_frames: int, where: str, notes: LabelNotes) -> np.ndarray:
    """One label per frame -> (n_frames,) int64 0/1.

    Accepts 0/1, bool and 0/255 (any nonzero = abnormal; noted once); refuses other values and a length
    that is not n_frames, naming `where` (file and video).
    """
    arr = np.asarray(values)
    arr = arr.reshape(-1) if arr.size == max(arr.shape, default=0) else arr
    if arr.ndim != 1:
        raise FFPError(f"{where}: expected one label per frame, got an array of shape {np.asarray(values).shape}")
    arr = _whole_numbers(arr, where, "frame labels")
    if len(arr) != n_frames:
        raise FFPError(f"{where}: {len(arr)} labels but {n_frames} frames")
    found = set(np.unique(arr).tolist())
    if found <= {0, 1}:
        return arr
    if found <= {0, 255}:
        notes.add("frame labels stored as 0/255 were read as 0 = normal, 255 = abnormal")
        return (arr != 0).astype(np.int64)
    raise FFPError(f"{where}: frame labels must be 0/1 (or bool, or 0/255), found values {sorted(found)[:6]}")


def _as_intervals(arr: np.ndarray, where: str, n_frames: int, notes: LabelNotes) -> np.ndarray:
    """Interval array of shape 2×K, K×2 or (2,) -> K×2 (start, end) rows, choosing the reading of its shape.

    (2, K) with K != 2 is the official 2×K; (K, 2) with K != 2 has one interval per row. A (2, 2) array fits
    both: the official 2×K reading (columns [start; end]) is used when it is valid; when only the row reading
    is valid (e.g. [2 3; 9 10]: columns 2-9 and 3-10 would overlap) that one is used and noted. (Both readings
    of ordered, non-overlapping intervals are never valid at once.)
    """
    if arr.ndim == 1:
        return arr.reshape(1, 2)
    if arr.shape == (2, 2) and not _valid_intervals(arr.T, n_frames) and _valid_intervals(arr, n_frames):
        notes.add(f"{where}: a 2×2 interval array read as one interval per row (frames {arr[0, 0]}-{arr[0, 1]} "
                  f"and {arr[1, 0]}-{arr[1, 1]}), because the official 2×K reading (columns [start; end]) would "
                  f"give overlapping intervals")
        return arr
    return arr.T if arr.shape[0] == 2 else arr


def _valid_intervals(rows: np.ndarray, n_frames: int) -> bool:
    """Whether K×2 rows are 1-based, ordered, inside the video and non-overlapping (no error raised)."""
    try:
        _check_intervals(rows, n_frames, "")
        return True
    except FFPError:
        return False


def _check_intervals(rows: np.ndarray, n_frames: int, where: str) -> None:
    """FFPError naming `where` for 0-based starts, start > end, out-of-range or overlapping intervals."""
    for start, end in rows:
        if start < 1:
            raise FFPError(f"{where}: interval [{start}, {end}] starts at {start}; intervals are 1-based "
                           f"inclusive (the first frame is 1) — add 1 to 0-based starts and ends")
        if start > end:
            raise FFPError(f"{where}: interval [{start}, {end}] ends before it starts")
        if end > n_frames:
            raise FFPError(f"{where}: interval [{start}, {end}] is outside the video's {n_frames} frames")
    ordered = rows[np.argsort(rows[:, 0])]
    for (s0, e0), (s1, e1) in zip(ordered[:-1], ordered[1:]):
        if s1 <= e0:
            raise FFPError(f"{where}: intervals [{s0}, {e0}] and [{s1}, {e1}] overlap")


def interval_labels(intervals, n_frames: int, where: str, notes: LabelNotes) -> np.ndarray:
    """1-based inclusive intervals (2×K, K×2 or (2,); empty = none) -> (n_frames,) int64 0/1 labels, checked."""
    arr = np.asarray(intervals)
    labels = np.zeros(n_frames, dtype=np.int64)
    if arr.size == 0:
        return labels
    arr = _whole_numbers(arr.squeeze() if arr.ndim > 2 else arr, where, "interval bounds")
    if not (arr.shape == (2,) or (arr.ndim == 2 and 2 in arr.shape)):
        raise FFPError(f"{where}: intervals must be 2×K ([start; end] columns), K×2 or one [start end], "
                       f"got shape {arr.shape}")
    return _fill(_as_intervals(arr, where, n_frames, notes), n_frames, where)


def row_interval_labels(rows, n_frames: int, where: str, notes: LabelNotes) -> np.ndarray:
    """Intervals written one per row with their meaning explicit (labels.csv `video,start,end`): K×2 (start, end),
    1-based inclusive, never re-oriented -> (n_frames,) int64 0/1 labels, checked like `interval_labels`."""
    arr = np.asarray(rows, dtype=np.float64).reshape(-1, 2)
    return _fill(_whole_numbers(arr, where, "interval bounds"), n_frames, where)


def _fill(rows: np.ndarray, n_frames: int, where: str) -> np.ndarray:
    """K×2 (start, end) rows, checked -> (n_frames,) int64 labels with 1 inside every interval."""
    _check_intervals(rows, n_frames, where)
    labels = np.zeros(n_frames, dtype=np.int64)
    for start, end in rows:
        labels[start - 1:end] = 1
    return labels


def entry_labels(entry, n_frames: int, where: str, notes: LabelNotes) -> np.ndarray:
    """One per-video entry of a label cell: intervals, or a 0/1 vector with one value per frame."""
    arr = np.asarray(entry)
    if arr.dtype == object:
        raise FFPError(f"{where}: expected intervals or one label per frame, found a nested cell")
    flat = arr.size == max(arr.shape, default=0)      # 1-D, 1×N or N×1
    if arr.size > 2 and flat and arr.size == n_frames:
        return frame_labels(arr, n_frames, where, notes)
    if flat and arr.size > 2:
        raise FFPError(f"{where}: a vector of {arr.size} values is neither one [start end] interval nor one "
                       f"label per frame ({n_frames} frames)")
    return interval_labels(arr, n_frames, where, notes)


# ----------------------------------------------------------------------------------------------- .mat files
def _hdf5_value(f, obj):
    """A MATLAB v7.3 variable as numpy: numeric arrays transposed back to MATLAB's shape, cells as object arrays."""
    import h5py
    data = obj[()]
    if isinstance(obj, h5py.Dataset) and obj.dtype == h5py.ref_dtype:
        cells = np.empty(data.shape, dtype=object)
        for index in np.ndindex(data.shape):
            cells[index] = _hdf5_value(f, f[data[index]])
        return cells.T
    if obj.attrs.get("MATLAB_empty", 0):
        return np.zeros((0,))
    return np.asarray(data).T


def load_mat(path: Path) -> dict[str, np.ndarray]:
    """{variable: array} of a .mat file, v4–v7 with scipy and v7.3 (HDF5) with h5py; FFPError naming the file."""
    try:
        return {k: v for k, v in scipy.io.loadmat(str(path), squeeze_me=False).items() if not k.startswith("__")}
    except NotImplementedError:   # scipy's answer to v7.3 files
        pass
    except Exception as exc:      # scipy raises many types for a damaged file
        raise FFPError(f"cannot read label file {path}: {exc}") from None
    try:
        import h5py
    except ImportError:
        raise FFPError(f"label file {path} is a MATLAB v7.3 (HDF5) file and h5py is not installed: "
                       f"pip install h5py, or re-save it in MATLAB with save(..., '-v7')") from None
    try:
        with h5py.File(path, "r") as f:
            return {k: _hdf5_value(f, f[k]) for k in f if not k.startswith("#")}
    except Exception as exc:
        raise FFPError(f"cannot read label file {path} (MATLAB v7.3 / HDF5): {exc}; re-save it in MATLAB with "
                       f"save(..., '-v7')") from None


def _label_variable(variables: dict[str, np.ndarray], path: Path, notes: LabelNotes) -> np.ndarray:
    """The frame-label variable of a .mat file: a known name, else the file's only variable."""
    for name in MAT_LABEL_NAMES:
        if name in variables:
            if name != "gt":
                notes.add(f"labels read from variable '{name}' of {path} (the official name is 'gt')")
            return variables[name]
    if len(variables) == 1:
        name = next(iter(variables))
        notes.add(f"labels read from variable '{name}' of {path}, its only variable (the official name is 'gt')")
        return variables[name]
    raise FFPError(f"label file {path} has no variable 'gt' (nor {', '.join(MAT_LABEL_NAMES[1:5])}, …) and "
                   f"several others ({', '.join(variables) or 'none'}): save the labels as 'gt'")


def read_mat_entries(path: Path, n_videos: int, notes: LabelNotes) -> list:
    """Per-video entries (in video order) of a <ds>.mat label file, for `entry_labels`.

    The variable is a cell with one entry per test video; a plain numeric array is accepted for a single
    test video (MATLAB squeezes such a cell away), or as a 2-D array with one row per video of per-frame labels.
    """
    value = _label_variable(load_mat(path), path, notes)
    if value.dtype == object:
        return [np.asarray(e) for e in value.reshape(-1)]
    if n_videos == 1:
        return [value]
    if value.ndim == 2 and value.shape[0] == n_videos and value.shape[1] > 2:
        return list(value)
    raise FFPError(f"label file {path}: expected a cell with one entry per test video ({n_videos}), got a "
                   f"numeric array of shape {value.shape}")


# ----------------------------------------------------------------------------------------------- other formats
def read_ucsd_m_entries(m_path: Path) -> list[np.ndarray]:
    """Official UCSDpedN.m -> one 2×K interval array (official orientation) per test video, in file order.

    Lines look like `TestVideoFile{end+1}.gt_frame = [61:180];` or `[1:3, 6:8]`.
    """
    result = []
    for line in m_path.read_text(errors="replace").splitlines():
        if "gt_frame" not in line:
            continue
        pairs = re.findall(r"(\d+)\s*:\s*(\d+)", line)
        if not pairs:
            raise FFPError(f"{m_path}: cannot parse interval line {line.strip()!r}")
        result.append(np.array(pairs, dtype=np.int64).reshape(-1, 2).T)
    if not result:
        raise FFPError(f"{m_path}: no 'gt_frame' lines found")
    return result


def _text_values(path: Path) -> np.ndarray:
    """All numbers of a .csv/.txt file (comma, space or newline separated; a non-numeric header line skipped)."""
    text = path.read_text(errors="replace")
    tokens = [t for t in re.split(r"[,\s;]+", text) if t]
    if tokens and not re.fullmatch(r"[-+0-9.eE]+", tokens[0]):
        tokens = tokens[1:]
    try:
        return np.array([float(t) for t in tokens])
    except ValueError as exc:
        raise FFPError(f"label file {path}: not a list of numbers ({exc})") from None


def read_frame_mask_dir(folder: Path) -> dict[str, tuple[np.ndarray, Path]]:
    """ShanghaiTech-style per-video frame labels: {video: (values, file)} from <video>.npy|.csv|.txt files."""
    result = {}
    for path in sorted(folder.iterdir(), key=natural_key):
        if is_junk(path) or path.suffix.lower() not in (".npy", ".csv", ".txt"):
            continue
        if path.suffix.lower() == ".npy":
            try:
                values = np.load(path, allow_pickle=False)
            except Exception as exc:
                raise FFPError(f"cannot read label file {path}: {exc}") from None
        else:
            values = _text_values(path)
        result[path.stem] = (values, path)
    if not result:
        raise FFPError(f"no <video>.npy/.csv/.txt label files in {folder}")
    return result


def read_avenue_dir(folder: Path) -> dict[str, tuple[np.ndarray, Path]]:
    """CUHK Avenue `<N>_label.mat` files (`volLabel`: one pixel mask per frame) -> {video: (0/1 per frame, file)}.

    Keys are the file's number N; `canonical` pairs '1' with video '01' or '01.avi'.
    """
    files = sorted((p for p in folder.glob("*_label.mat") if not is_junk(p)), key=natural_key)
    if not files:
        raise FFPError(f"no <N>_label.mat files in {folder}")
    result = {}
    for path in files:
        variables = load_mat(path)
        if "volLabel" not in variables:
            raise FFPError(f"label file {path} has no variable 'volLabel' (found: {', '.join(variables) or 'none'})")
        masks = variables["volLabel"].reshape(-1)
        result[path.name.split("_")[0]] = (np.array([int(np.any(m)) for m in masks], dtype=np.int64), path)
    return result


def read_interval_csv(path: Path, videos: list[str]) -> dict[str, np.ndarray]:
    """labels.csv with header `video,start,end` (1-based inclusive) -> {video: K×2 (start, end) rows, for
    `row_interval_labels`}; all videos present (those without rows get none). FFPError for a bad header/row or an
    unknown video name."""
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        rows = list(csv.reader(f))
    header = [c.strip().lower() for c in rows[0]] if rows else []
    if header[:3] != ["video", "start", "end"]:
        raise FFPError(f"label file {path}: the first line must be the header 'video,start,end', got {rows[:1]}")
    known = {canonical(v): v for v in videos}
    intervals: dict[str, list] = {v: [] for v in videos}
    for line, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) < 3:
            raise FFPError(f"label file {path} line {line}: expected video,start,end, got {row}")
        name = known.get(canonical(row[0].strip()))
        if name is None:
            raise FFPError(f"label file {path} line {line}: no test video named {row[0].strip()!r} "
                           f"(test videos: {', '.join(videos[:6])}{', …' if len(videos) > 6 else ''})")
        try:
            intervals[name].append((float(row[1]), float(row[2])))
        except ValueError:
            raise FFPError(f"label file {path} line {line}: start and end must be numbers, got {row[1:3]}") from None
    return {v: np.array(iv, dtype=np.float64).reshape(-1, 2) for v, iv in intervals.items()}


def canonical(name: str) -> str:
    """Video-name key that matches '1', '01' and '001' (numeric names), and a file's stem to its folder name."""
    stem = Path(name).stem if Path(name).suffix.lower() in (".avi", ".mp4", ".mkv", ".mov") else name
    return str(int(stem)) if stem.isdigit() else stem


def labels_from_masks(masks: "MaskSource") -> np.ndarray:
    """A frame is abnormal exactly when its pixel mask has any nonzero pixel."""
    return np.array([int(masks.read(i).any()) for i in range(len(masks))], dtype=np.int64)


# ----------------------------------------------------------------------------------------------- pixel masks
class MaskImages:
    """Pixel masks as image files, one per frame (UCSD TestNNN_gt/*.bmp|png)."""

    def __init__(self, files: list[Path], where: Path):
        self.files, self.where = files, where

    def __len__(self) -> int:
        return len(self.files)

    def read(self, index: int, size: tuple[int, int] | None = None) -> np.ndarray:
        """Mask of frame `index` as H×W bool (True = abnormal), nearest-neighbour resized to size=(H, W)."""
        return _binary(decode_image(self.files[index], cv2.IMREAD_GRAYSCALE), size)


class MaskArray:
    """Pixel masks as one n_frames×H×W array in a .npy file (ShanghaiTech test_pixel_mask), memory-mapped."""

    def __init__(self, path: Path):
        self.where = path
        try:
            self.array = np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as exc:
            raise FFPError(f"cannot read pixel-mask file {path}: {exc}") from None
        if self.array.ndim != 3:
            raise FFPError(f"pixel-mask file {path}: expected n_frames×H×W, got shape {self.array.shape}")

    def __len__(self) -> int:
        return int(self.array.shape[0])

    def read(self, index: int, size: tuple[int, int] | None = None) -> np.ndarray:
        """Mask of frame `index` as H×W bool (True = abnormal), nearest-neighbour resized to size=(H, W)."""
        return _binary(np.asarray(self.array[index]).astype(np.uint8, copy=False), size)


def _binary(mask: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """uint8 H0×W0 mask -> bool H×W (value > 0 = abnormal); nearest keeps it binary (no half-abnormal pixels)."""
    if size is not None and mask.shape != tuple(size):
        mask = cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    return mask > 0


class MaskVideo:
    """Pixel masks stored as a video file, one frame per video frame (e.g. TestNNN_gt.avi); decoded on first use
    and kept in memory as uint8 (masks are small: 180 frames of 240×360 are 16 MB)."""

    def __init__(self, path: Path):
        self.where, self._masks = path, None

    def _all(self) -> list[np.ndarray]:
        if self._masks is None:
            from .sources import VideoFile   # local: sources is the lower layer, imported lazily here
            source = VideoFile(self.where)
            _, _, height, width = source.container()   # masks are read at their own size
            self._masks = [cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) for _, rgb in source.frames(height, width)]
        return self._masks

    def __len__(self) -> int:
        return len(self._all())

    def read(self, index: int, size: tuple[int, int] | None = None) -> np.ndarray:
        """Mask of frame `index` as H×W bool (True = abnormal: lossy codecs leave faint values, so > 127)."""
        return _binary((self._all()[index] > 127).astype(np.uint8), size)


MaskSource = MaskImages | MaskArray | MaskVideo


def mask_image_dirs(dataset_dir: Path) -> list[Path]:
    """UCSD-style TestNNN_gt pixel masks in natural order (testing/UCSD_pixel_masks/ or Test/): image folders, or
    video files (TestNNN_gt.avi, …, a video being a folder or a file everywhere), or []."""
    from .sources import is_video_file
    for base in (dataset_dir / "testing" / "UCSD_pixel_masks", dataset_dir / "Test"):
        found = sorted((p for p in base.glob("Test*_gt*") if p.is_dir() or is_video_file(p)), key=natural_key) \
            if base.is_dir() else []
        if found:
            return found
    return []


def mask_images(path: Path) -> "MaskImages | MaskVideo":
    """The pixel masks of one test video: a folder of mask images, or a mask video file."""
    return MaskImages(list_images(path, MASK_EXTS), path) if path.is_dir() else MaskVideo(path)
