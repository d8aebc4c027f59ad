"""Frame labels of test videos: read from every format people save, checked when loaded, attached to the videos.

Frame labels end up as one (n_frames,) int64 array of 0/1 per test video (1 = abnormal). Where they are looked for
under the dataset folder, and in which order, is the table LABEL_PLACES at the end of this module: the first
place found is used, and each entry says which files it reads. Per-frame values may be 0/1, bool, or 0/255
(nonzero = abnormal, said once); anything else is refused. Intervals must be whole numbers, 1-based, start <= end,
inside the video and not overlapping. Every refusal is one FFPError naming the file and the video; nothing is
computed before the labels pass. Pixel masks (for pixel AUROC, and as labels of last resort) are in `masks`.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from errors import FFPError

from .files import canonical, is_junk, natural_key
from .types import DatasetFiles, LabelNotes, MaskSource, Video

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
        notes.add(
            f"{where}: a 2×2 interval array read as one interval per row (frames {arr[0, 0]}-{arr[0, 1]} "
            f"and {arr[1, 0]}-{arr[1, 1]}), because the official 2×K reading (columns [start; end]) would "
            f"give overlapping intervals"
        )
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
            raise FFPError(
                f"{where}: interval [{start}, {end}] starts at {start}; intervals are 1-based "
                f"inclusive (the first frame is 1) — add 1 to 0-based starts and ends"
            )
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
        raise FFPError(
            f"{where}: intervals must be 2×K ([start; end] columns), K×2 or one [start end], got shape {arr.shape}"
        )
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
        labels[start - 1 : end] = 1
    return labels


def entry_labels(entry, n_frames: int, where: str, notes: LabelNotes) -> np.ndarray:
    """One per-video entry of a label cell: intervals, or a 0/1 vector with one value per frame."""
    arr = np.asarray(entry)
    if arr.dtype == object:
        raise FFPError(f"{where}: expected intervals or one label per frame, found a nested cell")
    flat = arr.size == max(arr.shape, default=0)  # 1-D, 1×N or N×1
    if arr.size > 2 and flat and arr.size == n_frames:
        return frame_labels(arr, n_frames, where, notes)
    if flat and arr.size > 2:
        raise FFPError(
            f"{where}: a vector of {arr.size} values is neither one [start end] interval nor one "
            f"label per frame ({n_frames} frames)"
        )
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


# ----------------------------------------------------------------------------------------------- where labels are
Entries = list | dict  # a label file's entries: in test-video order, or {video name: entry or (entry, file)}


def _first(kind: str, *places: str) -> Callable[[Path, str, list[Video]], Path | None]:
    """A LabelPlace `find`: the first of `places` (paths relative to <ds>) that is a `kind` ('file' or 'folder')."""
    exists = Path.is_file if kind == "file" else Path.is_dir

    def find(ds: Path, name: str, test: list[Video]) -> Path | None:
        return next((ds / place for place in places if exists(ds / place)), None)

    return find


def _find_mat(ds: Path, name: str, test: list[Video]) -> Path | None:
    """<ds>/<dataset name>.mat, else <ds>/<folder name>.mat (e.g. UCSDped2/UCSDped2.mat)."""
    return next((mat for mat in dict.fromkeys((ds / f"{name}.mat", ds / f"{ds.name}.mat")) if mat.is_file()), None)


def _find_ucsd_m(ds: Path, name: str, test: list[Video]) -> Path | None:
    """The official UCSD label script (UCSDped1.m, UCSDped2.m) in <ds> or <ds>/Test: any other .m is someone's
    MATLAB code."""
    m_files = sorted(
        p
        for p in list(ds.glob("*.m")) + list((ds / "Test").glob("*.m"))
        if p.name.lower().startswith("ucsd") and not is_junk(p)
    )
    return m_files[0] if m_files else None


def _find_flat(ds: Path, name: str, test: list[Video]) -> Path | None:
    """<ds>/frame_labels_<name>.npy (also <ds>'s folder name, or a shorter form of either: MNAD's
    frame_labels_shanghai.npy for shanghaitech)."""
    files = {p.stem[len("frame_labels_") :].lower(): p for p in ds.glob("frame_labels_*.npy") if not is_junk(p)}
    for wanted in dict.fromkeys((name.lower(), ds.name.lower())):
        if wanted in files:
            return files[wanted]
        shorter = [files[k] for k in sorted(files) if k and wanted.startswith(k)]
        if shorter:
            return shorter[-1]
    return None


def _find_masks(ds: Path, name: str, test: list[Video]) -> Path | None:
    """'pixel masks' when every test video has pixel masks (attached before the labels are looked for)."""
    return Path("pixel masks") if all(v.masks is not None for v in test) else None


@dataclass(frozen=True)
class LabelPlace:
    """One place frame labels are looked for under a dataset folder <ds>.

    find(<ds>, dataset name, test videos) -> the label file or folder, or None when absent;
    read(found, test videos, notes) -> its entries: a list in test-video order, or {video name: entry or
    (entry, file)}; reader(entry, n_frames, where, notes) -> checked (n_frames,) int64 0/1 labels of one video.
    folders: names of the folders it occupies, which are never taken for videos.
    compared(test videos): whether it is read also when an earlier place gives the labels, to say where the two
    disagree (False where reading it costs far more than labels do: ShanghaiTech's .npy pixel masks).
    """

    name: str
    find: Callable[[Path, str, list[Video]], Path | None]
    read: Callable[[Path, list[Video], LabelNotes], Entries]
    reader: Callable[[object, int, str, LabelNotes], np.ndarray]
    folders: tuple[str, ...] = ()
    compared: Callable[[list[Video]], bool] = lambda test: True


# Where frame labels are looked for, in this order; the first place found is used.
LABEL_PLACES: tuple[LabelPlace, ...] = (
    # <ds>/<name>.mat or <ds>/<folder name>.mat: variable `gt` (or another common name, or the file's only
    # variable): a cell with one entry per test video, in video order; an entry is either intervals (2×K official:
    # columns [start; end], 1-based inclusive; K×2 one interval per row; a single [start end]) or one 0/1 label per
    # frame. MATLAB v7.3 (HDF5) files are read with h5py.
    LabelPlace("mat", _find_mat, lambda found, test, notes: read_mat_entries(found, len(test), notes), entry_labels),
    # <ds>/[testing/]test_frame_mask/<video>.npy|.csv|.txt: one label per frame (ShanghaiTech)
    LabelPlace(
        "test_frame_mask",
        _first("folder", "testing/test_frame_mask", "test_frame_mask"),
        lambda found, test, notes: read_frame_mask_dir(found),
        frame_labels,
        folders=("test_frame_mask",),
    ),
    # <ds>/[testing/|ground_truth_demo/]testing_label_mask/<N>_label.mat: `volLabel`, a pixel mask per frame (Avenue)
    LabelPlace(
        "testing_label_mask",
        _first("folder", "testing_label_mask", "testing/testing_label_mask", "ground_truth_demo/testing_label_mask"),
        lambda found, test, notes: read_avenue_dir(found),
        frame_labels,
        folders=("testing_label_mask", "ground_truth_demo"),
    ),
    # <ds>/[Test/]UCSD<ds>.m: lines `TestVideoFile{end+1}.gt_frame = [61:180];` (official UCSD)
    LabelPlace("ucsd_m", _find_ucsd_m, lambda found, test, notes: read_ucsd_m_entries(found), interval_labels),
    # <ds>/[testing/]labels.csv: rows `video,start,end` (1-based inclusive; videos not listed are all normal)
    LabelPlace(
        "labels.csv",
        _first("file", "testing/labels.csv", "labels.csv"),
        lambda found, test, notes: read_interval_csv(found, [v.name for v in test]),
        row_interval_labels,
    ),
    # <ds>/frame_labels_<name>.npy: one flat 0/1 array over all test videos, split by their frame counts in sorted
    # order (MNAD's frame_labels_ped2.npy, frame_labels_avenue.npy, frame_labels_shanghai.npy)
    LabelPlace("flat .npy", _find_flat, lambda found, test, notes: read_flat_labels(found, test), frame_labels),
    # the test videos' pixel masks (dataset.masks, e.g. UCSD TestNNN_gt/): a frame is abnormal when its mask has a
    # nonzero pixel; compared with other labels only where the masks are small (images, mask videos)
    LabelPlace(
        "pixel masks",
        _find_masks,
        lambda found, test, notes: {v.name: labels_from_masks(v.masks) for v in test if v.masks is not None},
        frame_labels,
        compared=lambda test: all(v.masks is not None and v.masks.small for v in test),
    ),
)


def _pairs(files: DatasetFiles, source: Path, entries: Entries) -> list[tuple[Video, object, Path]]:
    """(test video, its entry, the file it came from) for every test video: by position for a list of entries, by
    `canonical` name for a dict. FFPError for a count mismatch or a video without an entry."""
    if isinstance(entries, list):
        if len(entries) != len(files.test):
            raise FFPError(
                f"label file {source} lists {len(entries)} test videos but {len(files.test)} were found in {files.root}"
            )
        return list(zip(files.test, entries, [source] * len(entries)))
    by_name = {canonical(k): v for k, v in entries.items()}
    missing = [v.name for v in files.test if canonical(v.name) not in by_name]
    if missing:
        raise FFPError(f"no labels for test video(s) {', '.join(missing[:5])} of {files.name} in {source}")
    pairs = []
    for video in files.test:
        value = by_name[canonical(video.name)]
        value, where = value if isinstance(value, tuple) else (value, source)
        pairs.append((video, value, where))
    return pairs


def _numbering_note(video: Video) -> str:
    """'; its frames are numbered 0-179, 170 present: …' for a video with missing frames or uncertain numbers (so a
    count mismatch explains itself), else ''."""
    problems = video.source.report().problems()
    if not problems:
        return ""
    return f"; its frames are numbered 0-{video.frame_span() - 1}, {len(video)} present: {'; '.join(problems)}"


def attach_labels(files: DatasetFiles, places: tuple[LabelPlace, ...] = LABEL_PLACES) -> None:
    """Set `labels` of every test video from the first of `places` found under files.root, and `files.label_source`
    to where they came from; nothing when no place is found (or there are no test videos).

    A video's labels are (video.frame_span(),) int64 0/1, indexed by frame number: a label per frame of its
    numbering, so a folder with missing files (or a file with damaged frames) keeps the labels of the frames it has
    at their numbers (`layouts.scored_labels` pairs them by number). Pixel masks must be attached first (they are
    the last place). FFPError naming the file and the video for any count, name or value that does not check.
    Every other place found is read too and compared (`disagreement`): where it differs, or cannot be read, a
    note in files.notes says so; the labels used stay those of the first place.
    """
    if not files.test:
        return
    found = [(p, where) for p in places if (where := p.find(files.root, files.name, files.test)) is not None]
    if not found:
        return
    (place, source), others = found[0], found[1:]
    for video, labels in zip(files.test, read_place(files, place, source, files.notes)):
        video.labels = labels
    files.label_source = str(source)
    for other, where in others:
        note = disagreement(files, other, where)
        if note:
            files.notes.add(note)


def read_place(files: DatasetFiles, place: LabelPlace, found: Path, notes: LabelNotes) -> list[np.ndarray]:
    """The checked (frame_span(),) int64 0/1 labels of every test video (in files.test order) from `place`, found
    at `found`. FFPError naming the file and the video for anything that does not check."""
    labels = []
    for video, entry, where in _pairs(files, found, place.read(found, files.test, notes)):
        text = f"test video {video.name} (labels {where}, frames in {video.where}{_numbering_note(video)})"
        labels.append(place.reader(entry, video.frame_span(), text, notes))
    return labels


def disagreement(files: DatasetFiles, place: LabelPlace, found: Path, shown: int = 5) -> str | None:
    """One note on where a second label source (`place`, found at `found`) differs from the labels attached from
    files.label_source, printed after 'labels: ': 'from X; Y disagrees on video 18 (120 of 1,200 frames)' (the first
    `shown` videos named, then a count); a note when it cannot be read; None when it agrees or is not `compared`."""
    if not place.compared(files.test):
        return None
    try:
        other = read_place(files, place, found, LabelNotes())
    except FFPError as exc:
        return f"from {files.label_source}; {found} was not compared with them: {exc}"
    differ = [
        (video.name, int(np.count_nonzero(video.labels != labels)), len(labels))
        for video, labels in zip(files.test, other)
        if np.any(video.labels != labels)
    ]
    if not differ:
        return None
    listed = ", ".join(f"{name} ({n:,} of {total:,} frames)" for name, n, total in differ[:shown])
    more = f" and {len(differ) - shown} more" if len(differ) > shown else ""
    videos = "videos" if len(differ) > 1 else "video"
    return f"from {files.label_source}; {found} disagrees on {videos} {listed}{more}"
