"""Frame-label files in every format people save: .mat (v5 and v7.3), the official UCSD .m scripts,
ShanghaiTech's per-video arrays, Avenue's label masks, interval CSVs, flat arrays over all test videos; and labels
from pixel masks. Each reader returns entries for `label_values` to check."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from errors import FFPError

from .files import canonical, is_junk, natural_key
from .types import LabelNotes, MaskSource, Video

# Variable names people give frame-label arrays in .mat files, tried in this order.
MAT_LABEL_NAMES = (
    "gt",
    "GT",
    "gt_frame",
    "frame_gt",
    "frame_labels",
    "frame_label",
    "labels",
    "label",
    "ground_truth",
    "groundtruth",
    "gt_frames",
)


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
    import scipy.io  # here, not at the top: detect.py with an ONNX model runs where SciPy is not installed

    try:
        return {k: v for k, v in scipy.io.loadmat(str(path), squeeze_me=False).items() if not k.startswith("__")}
    except NotImplementedError:  # scipy's answer to v7.3 files
        pass
    except Exception as exc:  # scipy raises many types for a damaged file
        raise FFPError(f"cannot read label file {path}: {exc}") from None
    try:
        import h5py
    except ImportError:
        raise FFPError(
            f"label file {path} is a MATLAB v7.3 (HDF5) file and h5py is not installed: "
            f"pip install h5py, or re-save it in MATLAB with save(..., '-v7')"
        ) from None
    try:
        with h5py.File(path, "r") as f:
            return {k: _hdf5_value(f, f[k]) for k in f if not k.startswith("#")}
    except Exception as exc:
        raise FFPError(
            f"cannot read label file {path} (MATLAB v7.3 / HDF5): {exc}; re-save it in MATLAB with save(..., '-v7')"
        ) from None


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
    raise FFPError(
        f"label file {path} has no variable 'gt' (nor {', '.join(MAT_LABEL_NAMES[1:5])}, …) and "
        f"several others ({', '.join(variables) or 'none'}): save the labels as 'gt'"
    )


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
    raise FFPError(
        f"label file {path}: expected a cell with one entry per test video ({n_videos}), got a "
        f"numeric array of shape {value.shape}"
    )


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
            raise FFPError(
                f"label file {path} line {line}: no test video named {row[0].strip()!r} "
                f"(test videos: {', '.join(videos[:6])}{', …' if len(videos) > 6 else ''})"
            )
        try:
            intervals[name].append((float(row[1]), float(row[2])))
        except ValueError:
            raise FFPError(f"label file {path} line {line}: start and end must be numbers, got {row[1:3]}") from None
    return {v: np.array(iv, dtype=np.float64).reshape(-1, 2) for v, iv in intervals.items()}


def read_flat_labels(path: Path, test: list[Video]) -> list[np.ndarray]:
    """One flat per-frame label array covering every test video (MNAD's frame_labels_ped2.npy,
    frame_labels_shanghai.npy: shape (N,) or (1, N), 0/1) -> one (n_frames,) slice per test video, in the test
    videos' sorted order (the order of `test`), each n_frames = video.frame_span() long, for `frame_labels`.

    FFPError naming the file when it cannot be read, is not one row, or N differs from the test frames in all."""
    try:
        values = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise FFPError(f"cannot read label file {path}: {exc}") from None
    if values.size != max(values.shape, default=0):
        raise FFPError(f"label file {path}: expected one row of per-frame labels, got an array of shape {values.shape}")
    values = values.reshape(-1)
    counts = [video.frame_span() for video in test]
    if len(values) != sum(counts):
        shown = " + ".join(f"{c:,}" for c in counts[:6]) + (" + …" if len(counts) > 6 else "")
        raise FFPError(
            f"label file {path}: {len(values):,} labels but the {len(test)} test videos have {sum(counts):,} frames "
            f"({shown}); a flat label file is split by the test videos' frame counts in their sorted order, so it "
            f"needs one label per test frame of exactly these videos"
        )
    ends = np.cumsum(counts)
    return [values[end - count : end] for count, end in zip(counts, ends)]


def labels_from_masks(masks: MaskSource) -> np.ndarray:
    """A frame is abnormal exactly when its pixel mask has any nonzero pixel."""
    return np.array([int(masks.read(i).any()) for i in range(len(masks))], dtype=np.int64)
