"""Frame labels of test videos: where they are looked for, attached to the videos, and compared when found twice.

Frame labels end up as one (n_frames,) int64 array of 0/1 per test video (1 = abnormal). Where they are looked for
under the dataset folder, and in which order, is the table LABEL_PLACES in this module: the first place found is
used, and each entry says which files it reads (`label_files`) and how its entries are checked (`label_values`).
Every refusal is one FFPError naming the file and the video; nothing is computed before the labels pass. Pixel masks
(for pixel AUROC, and as labels of last resort) are in `masks`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from errors import FFPError

from .files import canonical, is_junk
from .label_files import (
    labels_from_masks,
    read_avenue_dir,
    read_flat_labels,
    read_frame_mask_dir,
    read_interval_csv,
    read_mat_entries,
    read_ucsd_m_entries,
)
from .label_values import entry_labels, frame_labels, interval_labels, row_interval_labels
from .types import DatasetFiles, LabelNotes, Video

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
    at their numbers (`types.scored_labels` pairs them by number). Pixel masks must be attached first (they are
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
