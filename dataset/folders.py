"""A video stored as a folder of image files: frame numbers from the file names, and what they say is missing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from config import FOLDER_FPS
from errors import FFPError

from .files import list_images
from .frame_numbers import ranges_text
from .images import read_frame

_DIGITS = re.compile(r"\d+")


def _file_number(path: Path) -> tuple[str, int] | None:
    """(the name with its last run of digits replaced by '#', lower-case; that run's value) or None without digits.

    'frame_0042.jpg' -> ('frame_#.jpg', 42); '2024-05-01_12-00-07.png' -> ('2024-05-01_12-00-#.png', 7)."""
    runs = list(_DIGITS.finditer(path.stem))
    if not runs:
        return None
    last = runs[-1]
    template = path.stem[: last.start()] + "#" + path.stem[last.end() :] + path.suffix
    return template.lower(), int(last.group())


def number_files(files: list[Path]) -> tuple[list[Path], np.ndarray, int, str | None]:
    """A frame folder's files with their frame numbers: (files ordered by number, (n,) int64 frame numbers, base,
    note).

    The rule (one for every folder): when every file name has the same text around its last run of digits
    ('001.jpg', '002.jpg'; 'frame_0001.png', …), that run is the file number, and frame number = file number −
    base, with base 0 when a file is numbered 0 and 1 otherwise (Ped2's 001.jpg is frame 0, as its labels count;
    ShanghaiTech's 000.jpg is frame 0). So a file missing from the folder leaves a gap in the numbers, and the files
    after it keep theirs. Names without digits, or differing elsewhere too (time stamps, several cameras), give no
    frame numbers: the files are numbered by position 0..n-1 (natural order) and `note` says so (else None).
    FFPError naming both files when two files carry the same number (1.jpg and 001.jpg).
    """
    parsed = [_file_number(p) for p in files]
    if not files or any(p is None for p in parsed) or len({p[0] for p in parsed if p is not None}) > 1:
        note = (
            None
            if not files
            else "its file names are not numbered alike (one run of digits in the same place), so its frames are "
            "numbered by their position in natural order"
        )
        return list(files), np.arange(len(files), dtype=np.int64), 0, note
    values = np.array([p[1] for p in parsed if p is not None], dtype=np.int64)
    order = np.argsort(values, kind="stable")
    values, ordered = values[order], [files[i] for i in order]
    same = np.flatnonzero(np.diff(values) == 0)
    if len(same):
        a, b = ordered[same[0]], ordered[same[0] + 1]
        raise FFPError(
            f"video folder {a.parent}: {a.name} and {b.name} both carry the number {values[same[0]]} (a frame's "
            f"number comes from its file name); remove or rename one of them"
        )
    base = 0 if values[0] == 0 else 1
    return ordered, values - base, base, None


@dataclass
class FolderReport:
    """What a frame folder's file names say about its frames (the `DecodeReport` of a folder).

    numbers: (n,) int64 frame numbers (see `number_files`); base: the file number of frame 0 (0 or 1);
    files: the files, in the order of `numbers`; note: why frames are numbered by position, or None.
    """

    path: Path
    numbers: np.ndarray
    base: int
    files: list[Path]
    note: str | None = None
    uncertain: list[tuple[int, int]] = field(default_factory=list)  # always empty: a file name is its number

    @property
    def n_frames(self) -> int:
        """Number of frame files."""
        return int(len(self.numbers))

    @property
    def seconds(self) -> np.ndarray:
        """(n,) float64 time of each frame in seconds: frame number / config.FOLDER_FPS (a folder has no clock)."""
        return self.numbers / FOLDER_FPS

    def gaps(self) -> list[tuple[int, int]]:
        """(last frame before, first frame after) for every run of missing frame numbers; (-1, first) when the
        folder does not start at frame 0."""
        found = [(int(self.numbers[i]), int(self.numbers[i + 1])) for i in np.flatnonzero(np.diff(self.numbers) > 1)]
        return ([(-1, int(self.numbers[0]))] if self.n_frames and self.numbers[0] > 0 else []) + found

    def problems(self) -> list[str]:
        """Human-readable findings: missing frame files, or names that give no numbers (empty when the numbers in
        the file names run without a gap)."""
        gaps = self.gaps()
        if not gaps:
            return [] if self.note is None else [self.note]
        files = ranges_text([(a + 1 + self.base, b - 1 + self.base) for a, b in gaps])
        frames = "" if self.base == 0 else f", frames {ranges_text([(a + 1, b - 1) for a, b in gaps])}"
        return [
            f"{sum(b - a - 1 for a, b in gaps)} frame files missing in {len(gaps)} gap(s) (file numbers {files} "
            f"absent{frames}; the other frames keep the numbers of their file names)"
        ]

    def summary(self) -> dict:
        """JSON-able facts for result files."""
        return {
            "frames": self.n_frames,
            "numbering": self.note or f"file numbers, {self.base}-based (file {self.base} is frame 0)",
            "first_frame": int(self.numbers[0]) if self.n_frames else None,
            "last_frame": int(self.numbers[-1]) if self.n_frames else None,
            "gaps": [list(g) for g in self.gaps()],
            "problems": self.problems(),
        }


class FrameFolder:
    """A video stored as a folder of image files (hidden files and OS droppings skipped).

    Frame numbers come from the file names (`number_files`: '001.jpg' is frame 0 of a 1-based folder; a missing
    file is a gap in the numbers, reported by `report()`); files are read in that order. Reading is random access
    by position (0..len-1). FFPError naming both files when two carry the same number.
    """

    kind = "video folder"

    def __init__(self, path: Path, files: list[Path] | None = None, base: int | None = None):
        self.path = Path(path)
        found = list_images(self.path) if files is None else list(files)
        self.files, numbers, own_base, self.note = number_files(found)
        self.base = own_base if base is None else base
        self._numbers = numbers + own_base - self.base

    def __len__(self) -> int:
        return len(self.files)

    def numbers(self) -> np.ndarray:
        """(n,) int64 frame numbers, strictly increasing (from the file names; 0..n-1 for unnumbered names)."""
        return self._numbers

    def read(self, index: int, height: int, width: int) -> np.ndarray:
        """Frame at position `index` (0..len-1, not its frame number) as height×width×3 uint8 RGB."""
        return read_frame(self.files[index], height, width)

    def frames(self, height: int, width: int) -> Iterator[tuple[int, np.ndarray]]:
        """(frame number, height×width×3 uint8 RGB) of every frame, in order."""
        for number, path in zip(self._numbers.tolist(), self.files):
            yield number, read_frame(path, height, width)

    def head(self, n: int) -> FrameFolder:
        """The same video cut to its frames numbered below n."""
        return FrameFolder(self.path, self.files[: int(np.searchsorted(self._numbers, n))], self.base)

    def report(self) -> FolderReport:
        """What the file names say: frame numbers, their base, and missing frame files (`FolderReport`)."""
        return FolderReport(self.path, self._numbers, self.base, self.files, self.note)

    def __repr__(self) -> str:
        return f"FrameFolder({str(self.path)!r}, {len(self.files)} frames)"
