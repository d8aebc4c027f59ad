"""Frame labels checked when loaded: per-frame values (0/1, bool, 0/255) and 1-based inclusive intervals, each
video's labels as one (n_frames,) int64 array of 0/1 (1 = abnormal). Every refusal is one FFPError naming the file
and the video."""

from __future__ import annotations

import numpy as np

from errors import FFPError

from .types import LabelNotes


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
