"""Where a video's frames come from: a folder of images or a video file, behind one interface.

    source = open_source(Path("training/01"))        # FrameFolder
    source = open_source(Path("training/01_001.avi")) # VideoFile (anything FFmpeg decodes, through PyAV)
    len(source); source.numbers(); source.frames(height, width) -> (number, H×W×3 uint8 RGB) in order
    source.report().problems()                        # missing frames, uncertain numbers, an early end

Frames get one preprocessing whatever their origin (`prepare_frame`: RGB, resized to the config size).
Frame numbers are true to the source, one rule for files and folders: a frame's number is its place among the
frames the source lists, so a missing frame leaves a gap and the frames after it keep their numbers. A folder's
numbers are the numbers in its file names (`number_files`); a video file's come from the container's index (AVI)
or packet timestamps (`_Numbering`), never from counting decoded frames, so an intact file of variable frame rate
is numbered 0..n-1 and a damaged one keeps true numbers after the damage. Where no number can be known the range
is reported as uncertain (`DecodeReport.uncertain`). Video files are counted by DECODING them, never by the
container's frame count (headers lie: OpenCV's sample tree.avi declares 444 frames and 68 decode).
"""

from __future__ import annotations

import bisect
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal, overload

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from config import FOLDER_FPS
from errors import FFPError

if TYPE_CHECKING:
    import torch  # annotations only: this module decodes frames without torch (detect.py with an ONNX model)

# FFmpeg (inside OpenCV) prints a line per damaged macroblock to stderr; the project reports damage itself.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
_cv_log = cv2.utils.logging

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
VIDEO_EXTS = (
    ".avi",
    ".mp4",
    ".mov",
    ".mkv",
    ".mpg",
    ".mpeg",
    ".m4v",
    ".webm",
    ".wmv",
    ".flv",
    ".3gp",
    ".ts",
    ".mts",
    ".m2ts",
    ".ogv",
    ".mjpeg",
    ".mjpg",
    ".h264",
    ".264",
    ".hevc",
    ".265",
)
# Files that operating systems and file managers leave in folders; never frames, never videos.
OS_DROPPINGS = {".ds_store", "thumbs.db", "desktop.ini", "ehthumbs.db", "icon\r"}


def is_junk(path: Path) -> bool:
    """Hidden files (incl. macOS `._*` resource forks) and OS droppings (.DS_Store, Thumbs.db, desktop.ini)."""
    return path.name.startswith(".") or path.name.lower() in OS_DROPPINGS


def natural_key(path: Path) -> list:
    """Sort 'frame2' before 'frame10'."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def list_images(folder: Path, exts: tuple[str, ...] = IMAGE_EXTS) -> list[Path]:
    """Image files of a folder in natural order, hidden files and OS droppings skipped."""
    return sorted(
        (p for p in folder.iterdir() if p.suffix.lower() in exts and not is_junk(p) and p.is_file()), key=natural_key
    )


def is_video_file(path: Path) -> bool:
    """A visible regular file with a video extension (see VIDEO_EXTS)."""
    return path.suffix.lower() in VIDEO_EXTS and not is_junk(path) and path.is_file()


# ----------------------------------------------------------------------------------------------- one frame
def prepare_frame(bgr: np.ndarray, height: int, width: int) -> np.ndarray:
    """One decoded OpenCV frame (H0×W0×3 BGR or H0×W0 grey, uint8) -> height×width×3 uint8 RGB.

    Every model input goes through here, from image files and video files alike. INTER_AREA when
    shrinking (no aliasing), bilinear when enlarging.
    """
    if bgr.ndim == 2:
        bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
    h, w = bgr.shape[:2]
    if (h, w) != (height, width):
        shrink = h * w > height * width
        bgr = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


_JPEG_TAIL = 4096  # FF D9 cannot occur inside entropy-coded data (0xFF is byte-stuffed), so this is safe


def _check_complete(data: bytes, path: str | Path) -> None:
    """Refuse a JPEG/PNG/BMP whose end is missing (a truncated copy or download), naming the file.

    Decoders accept such files silently (a JPEG decodes to a half-grey image) or print C-level warnings,
    so the end of the file is checked first: JPEG end-of-image marker FF D9 near the end (a little trailing
    padding is tolerated), PNG IEND chunk, BMP header size <= file size. A cheap byte test, no decoding.
    """
    if data[:3] == b"\xff\xd8\xff":
        if b"\xff\xd9" not in data[-_JPEG_TAIL:]:
            raise FFPError(
                f"cannot read image {path}: truncated JPEG ({len(data)} bytes, no end-of-image "
                f"marker); re-extract or replace this frame"
            )
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        if b"IEND" not in data[-64:]:
            raise FFPError(
                f"cannot read image {path}: truncated PNG ({len(data)} bytes, no IEND chunk); "
                f"re-extract or replace this frame"
            )
    elif data[:2] == b"BM" and len(data) >= 6:
        expected = int.from_bytes(data[2:6], "little")
        if len(data) < expected:
            raise FFPError(
                f"cannot read image {path}: truncated BMP ({len(data)} of {expected} bytes); "
                f"re-extract or replace this frame"
            )


@contextmanager
def opencv_log_at_most(level: int) -> Iterator[None]:
    """OpenCV's C-level log at `level` or quieter inside the block (e.g. cv2.utils.logging.LOG_LEVEL_SILENT while
    probing files, whose failures we report ourselves in one line); the previous level comes back after."""
    previous = _cv_log.getLogLevel()
    _cv_log.setLogLevel(min(previous, level))
    try:
        yield
    finally:
        _cv_log.setLogLevel(previous)


def decode_image(path: str | Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """An image file decoded by OpenCV (BGR, or grey with IMREAD_GRAYSCALE); FFPError naming the file if unreadable.

    Missing, unreadable, empty, truncated (JPEG/PNG/BMP, see `_check_complete`) and undecodable files are
    refused with one message naming the file; OpenCV's own C-level log lines are silenced while decoding.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise FFPError(f"cannot read image {path}: {exc.strerror or exc}") from None
    if not data:
        raise FFPError(f"cannot read image {path}: the file is empty (0 bytes)")
    _check_complete(data, path)
    with opencv_log_at_most(_cv_log.LOG_LEVEL_SILENT):
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None:
        raise FFPError(f"cannot read image {path}: not a valid image file (corrupt or unsupported format)")
    return image


def read_frame(path: str | Path, height: int, width: int) -> np.ndarray:
    """Read one image as H×W×3 uint8 RGB resized to (height, width); FFPError naming the file if unreadable.

    Frames of different sizes in one video are all resized to the config size (made consistent, not refused).
    16-bit images are brought to 8 bits by `to_8bit` (sensor data of 12 bits is not read as a black frame).
    """
    return prepare_frame(to_8bit(decode_image(path, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH), path), height, width)


TWELVE_BIT_MAX = 4095
DEPTH_SAMPLE = 16  # frames of a folder looked at to decide its bit depth
_folder_full_scale: dict[str, int] = {}  # folder -> 4095 or 65535, decided once per process


def sixteen_bit_full_scale(path: str | Path) -> int:
    """The value that maps to 255 for the 16-bit frames of `path`'s folder: 4095 when the largest value over up
    to DEPTH_SAMPLE frames spread through the folder is at most 4095 (12-bit sensor data), else 65535.

    Decided once per folder (and process, with the same answer in every DataLoader worker) so that all frames of
    one video are scaled alike: a dark frame is never brightened 16× next to its neighbours. Says once how the
    folder is read."""
    folder = Path(path).parent
    key = str(folder)
    if key not in _folder_full_scale:
        files = list_images(folder) or [Path(path)]
        sample = files[:: max(1, len(files) // DEPTH_SAMPLE)][:DEPTH_SAMPLE]
        top = max(int(decode_image(f, cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH).max()) for f in sample)
        full = TWELVE_BIT_MAX if top <= TWELVE_BIT_MAX else 65535
        _folder_full_scale[key] = full
        print(
            f"note: {folder} holds 16-bit images (largest value {top} in {len(sample)} of its {len(files)} "
            f"frames): read as {12 if full == TWELVE_BIT_MAX else 16}-bit data scaled to 0..255",
            flush=True,
        )
    return _folder_full_scale[key]


def to_8bit(image: np.ndarray, path: str | Path) -> np.ndarray:
    """uint8 as is; a uint16 image scaled to uint8 by its folder's bit depth (`sixteen_bit_full_scale`: ×255/4095
    for 12-bit sensor data, ×255/65535 for full 16-bit data). FFPError naming the file for a frame above its
    folder's 12-bit range (frames of one video must share one bit depth) and for other pixel types (float images).
    """
    if image.dtype == np.uint8:
        return image
    if image.dtype != np.uint16:
        raise FFPError(f"cannot read image {path}: {image.dtype} pixels (expected 8- or 16-bit integer images)")
    full = sixteen_bit_full_scale(path)
    top = int(image.max()) if image.size else 0
    if top > full:
        raise FFPError(
            f"cannot read image {path}: values up to {top}, but the other frames of {Path(path).parent} "
            f"are 12-bit data (at most {TWELVE_BIT_MAX}); frames of one video must share one bit depth"
        )
    return np.clip(image.astype(np.float32) * (255.0 / full) + 0.5, 0, 255).astype(np.uint8)


def to_network_range(frames: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] (any shape) -> float32 in [-1, 1], on the tensor's device.

    The one scaling of frames into the network: training, evaluation, detection, and the exported ONNX graph (which
    contains this function's operations, so ONNX Runtime scales exactly as PyTorch does)."""
    return frames.float().div_(127.5).sub_(1.0)


# ----------------------------------------------------------------------------------------------- folders
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
        files = _ranges([(a + 1 + self.base, b - 1 + self.base) for a, b in gaps])
        frames = "" if self.base == 0 else f", frames {_ranges([(a + 1, b - 1) for a, b in gaps])}"
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


def _ranges(pairs: list[tuple[int, int]], shown: int = 5) -> str:
    """'60-69, 75, …': inclusive (first, last) ranges for messages, the first `shown` of them."""
    text = ", ".join(f"{a}-{b}" if b > a else f"{a}" for a, b in pairs[:shown])
    return text + (" …" if len(pairs) > shown else "")


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


# ----------------------------------------------------------------------------------------------- video files
@dataclass
class DecodeReport:
    """What decoding a video file to its end found.

    numbers: (n,) int64 frame number of every decoded frame: its place among the frames the container lists (the
    AVI index, else the packets' timestamps in presentation order), so an intact file, of constant or variable frame
    rate, is numbered 0..n-1 and frames after damaged data keep their true numbers; seconds: (n,) float64 time of
    each frame from the container's timestamps, relative to the first decoded frame; fps: the container's frame
    rate (average for a variable rate) or None; header_frames: the container's declared frame count (None when it
    declares none), informative only; retries: packets of damaged data (failed, or flagged corrupt) that a good
    frame followed; listed: the frames the container's index or packets list (what an early end is measured
    against; None: unknown, then header_frames); uncertain: (first, last) frame-number ranges, inclusive, whose
    numbers are estimates (after damaged data that neither an index nor timestamps let count, see `_Numbering`);
    lasts_s: the container's duration in seconds where it is exact and no frame count is (Matroska, WebM, FLV).
    Damage shows as gaps in `numbers` (frames missing), uncertain ranges, or an early end (`problems`).
    """

    path: Path
    numbers: np.ndarray
    fps: float | None
    header_frames: int | None
    retries: int = 0
    seconds: np.ndarray = field(default_factory=lambda: np.zeros(0))
    listed: int | None = None
    uncertain: list[tuple[int, int]] = field(default_factory=list)
    lasts_s: float | None = None

    def __post_init__(self) -> None:
        if len(self.seconds) != len(self.numbers):  # built without times (tests, old callers): from the numbers
            self.seconds = np.asarray(self.numbers, dtype=np.float64) / (self.fps or FOLDER_FPS)

    @property
    def n_frames(self) -> int:
        """Number of frames that decoded."""
        return int(len(self.numbers))

    def gaps(self) -> list[tuple[int, int]]:
        """(last frame before, first frame after) for every jump in the frame numbers (see `gaps_after`)."""
        return [(int(self.numbers[i]), int(self.numbers[i + 1])) for i in gaps_after(self.numbers)]

    def missing_tail(self) -> int:
        """Frames the container lists after the last decoded one (0 when it lists none or they all came)."""
        expected = self.listed or self.header_frames
        if not expected or not self.n_frames:
            return 0
        return max(expected - int(self.numbers[-1]) - 1, 0)

    def missing_time(self) -> float:
        """Seconds the container lasts after the last decoded frame, beyond one second of slack (0 when unknown):
        an early end of a file whose container counts no frames (Matroska, WebM, FLV)."""
        if self.lasts_s is None or not self.n_frames:
            return 0.0
        missing = self.lasts_s - float(self.seconds[-1]) - 1.0
        return missing if missing > 0 else 0.0

    def problems(self) -> list[str]:
        """Human-readable damage findings (empty when the file decoded whole)."""
        found = []
        gaps = self.gaps()
        if gaps:
            shown = _ranges([(a + 1, b - 1) for a, b in gaps])
            kept = "" if self.uncertain else "; the frames after keep their true numbers, from the container"
            found.append(
                f"{sum(b - a - 1 for a, b in gaps)} frames missing in {len(gaps)} gap(s) (frames {shown}: "
                f"damaged data the decoder could not read{kept})"
            )
        if self.uncertain:
            shown = _ranges(self.uncertain)
            found.append(
                f"frame numbers uncertain for frames {shown} (after damaged data that neither the container's index "
                f"nor its timestamps let count: estimated, they may belong elsewhere)"
            )
        tail = self.missing_tail()
        if self.retries and not gaps and not self.uncertain and not tail:
            found.append(
                f"the decoder failed {self.retries} time(s) part-way through and recovered (damaged data; no frame "
                f"was lost and every number is known, but pictures near it may show damage)"
            )
        if tail:
            found.append(
                f"decoding stopped after frame {int(self.numbers[-1])} but the container lists "
                f"{self.listed or self.header_frames} frames ({tail} missing at the end: the file is cut or damaged)"
            )
        elif self.missing_time():
            found.append(
                f"decoding stopped after frame {int(self.numbers[-1])} at {self.seconds[-1]:.1f} s but the container "
                f"lasts {self.lasts_s:.1f} s (frames missing at the end: the file is cut or damaged)"
            )
        return found

    def summary(self) -> dict:
        """JSON-able facts for result files."""
        return {
            "decoded_frames": self.n_frames,
            "header_frames": self.header_frames,
            "listed_frames": self.listed,
            "fps": self.fps,
            "first_frame": int(self.numbers[0]) if self.n_frames else None,
            "last_frame": int(self.numbers[-1]) if self.n_frames else None,
            "duration_s": float(self.seconds[-1]) if self.n_frames else None,
            "gaps": [list(g) for g in self.gaps()],
            "uncertain": [list(r) for r in self.uncertain],
            "missing_at_end": self.missing_tail(),
            "missing_seconds_at_end": round(self.missing_time(), 3),
            "decode_retries": self.retries,
            "problems": self.problems(),
        }


def gap_limit(numbers: np.ndarray) -> float:
    """Smallest jump between consecutive frame numbers that means frames are missing: max(2, 2 × the median step).

    Frame numbers of files and folders step by 1, so this is 2 (one missing frame is a gap); the median keeps
    sparse numberings of other origins (a live source's clock) from reporting every step as a gap.
    """
    steps = np.diff(np.asarray(numbers))
    return max(2.0, 2.0 * float(np.median(steps))) if len(steps) else 2.0


def gaps_after(numbers: np.ndarray) -> np.ndarray:
    """Indices i such that frames are missing between numbers[i] and numbers[i + 1] (a jump ≥ `gap_limit`)."""
    numbers = np.asarray(numbers)
    return np.flatnonzero(np.diff(numbers) >= gap_limit(numbers))


# An AVI idx1 entry: chunk id ('00dc' = stream 00, compressed video), flags, offset of the chunk, its data size.
_IDX1 = np.dtype([("stream", "S2"), ("kind", "S2"), ("flags", "<u4"), ("offset", "<u4"), ("size", "<u4")])
_AVI_VIDEO_KINDS = (b"dc", b"db")  # compressed / uncompressed frames ('pc' palette changes are no frames)


def _avi_chunks(f, end: int) -> tuple[int | None, np.ndarray | None]:
    """(position of the 'movi' list's id, idx1 entries) found walking the top-level chunks of an AVI up to `end`."""
    movi, entries, pos = None, None, 12
    while pos + 8 <= end:
        f.seek(pos)
        header = f.read(12)
        if len(header) < 8:
            break
        tag, size = header[:4], int.from_bytes(header[4:8], "little")
        if tag == b"LIST" and header[8:12] == b"movi":
            movi = pos + 8
        elif tag == b"idx1":
            f.seek(pos + 8)
            data = f.read(size - size % _IDX1.itemsize)
            entries = np.frombuffer(data[: len(data) - len(data) % _IDX1.itemsize], _IDX1)
        pos += 8 + size + (size & 1)
    return movi, entries


def avi_frame_slots(path: Path, stream_index: int) -> dict[int, tuple[int, int]] | None:
    """{file position of a frame's data: (its frame number, its tick)} from an AVI's idx1 index, or None when the file
    has no
    usable one (not an AVI, no or damaged index, or an OpenDML file of several RIFF parts the idx1 does not cover).

    The AVI demuxer counts the packets it reads, so after damaged bytes it renumbers the frames that follow; the
    index says where every frame's chunk is. Frames are the index's chunks of this stream with data (a chunk of
    size 0 repeats the previous picture, e.g. OpenCV's tree.avi lists 444 chunks of which 68 hold pictures).
    A frame's tick is its chunk's place among all the stream's chunks, empty ones included: its time in units of
    the stream's time base (1 / frame rate). Index offsets are relative to the 'movi' list or absolute in the
    file: the first chunk's id tells which.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if head[:4] != b"RIFF" or head[8:12] != b"AVI ":
                return None
            riff_end = 8 + int.from_bytes(head[4:8], "little")
            if os.path.getsize(path) > riff_end + 8:  # further RIFF AVIX parts (OpenDML): idx1 covers the first
                return None
            movi, entries = _avi_chunks(f, riff_end)
            if movi is None or entries is None:
                return None
            chunks = entries[
                (entries["stream"] == f"{stream_index:02d}".encode()) & np.isin(entries["kind"], _AVI_VIDEO_KINDS)
            ]
            ticks = np.flatnonzero(chunks["size"] > 0)
            mine = chunks[ticks]
            if not len(mine):
                return None
            tag = bytes(mine["stream"][0]) + bytes(mine["kind"][0])
            for base in (movi, 0):
                f.seek(base + int(mine["offset"][0]))
                if f.read(4) == tag:
                    positions = mine["offset"].astype(np.int64) + base + 8
                    return dict(zip(positions.tolist(), enumerate(ticks.tolist())))
    except OSError:
        return None
    return None


class _Numbering:
    """Frame numbers of one decode pass, strictly increasing, and what made any of them uncertain.

    A frame's number is its packet's place among the frames the container lists: the AVI index's slot of the
    packet's file position (`avi_frame_slots`), else the rank of its timestamp among the timestamps of the packets
    read so far (a decoder shows frames in timestamp order, after every packet it needs). Before any damage,
    decode order is exact too; after it, a frame that neither places is numbered next and marked uncertain.
    Containers that can lose packets without a trace (the demuxer skips damaged bytes silently) are followed byte by
    byte (`_ByteTrail`, which calls `lose` at every stretch of skipped bytes); from then on ranks no longer count the
    lost packets and nothing tells how many frames they held (a frame rate that changed inside them is invisible),
    so every later number is uncertain: estimated on the timestamp grid of the container's rate (`frame_ticks`, for
    Matroska, MPEG-TS/PS, FLV, … when every rank before the loss was on it), else in decode order (`counted`: an AVI
    without a usable index, whose timestamps count the packets read). MP4/MOV (a sample table lists every packet)
    and an indexed AVI never lose a packet unseen.
    """

    def __init__(
        self, slots: dict[int, tuple[int, int]] | None, counted: bool = False, frame_ticks: float | None = None
    ):
        self.slots, self.counted, self.frame_ticks = slots, counted, frame_ticks
        self.slot_of_pts: dict[int, tuple[int, int]] = {}  # AVI: a packet's timestamp -> its (slot, tick)
        self.timeline: list[int] = []  # other containers: sorted timestamps of the packets read
        self.last, self.damaged, self.on_grid = -1, False, True
        self.losses = 0  # stretches of packets lost unseen
        self.failed, self.recovered = 0, 0  # damaged packets since the last frame; those a good frame followed
        self.uncertain: list[tuple[int, int]] = []

    def packet(self, packet: av.Packet) -> None:
        """Account for one demuxed packet of the video stream (before decoding it)."""
        if packet.size == 0:  # the flush at the end
            return
        if packet.is_corrupt:
            self.damage()
        if self.slots is not None and not self.slot_of_pts and packet.pos not in self.slots:
            self.slots, self.counted = None, True  # not even the first packet is where the index says: no index
        if self.slots is not None:
            slot = self.slots.get(packet.pos) if packet.pos is not None else None
            if slot is None:
                self.damaged = True  # a packet the index does not list: the demuxer resynchronised after damage
            elif packet.pts is not None:
                self.slot_of_pts[packet.pts] = slot
        elif packet.pts is not None and not packet.is_discard:
            bisect.insort(self.timeline, packet.pts)

    def damage(self) -> None:
        """Damaged data met (a packet the decoder failed on, or one the demuxer flagged corrupt)."""
        self.failed += 1
        self.damaged = True

    def lose(self) -> None:
        """Packets were lost unseen (bytes skipped before the packet about to be accounted)."""
        self.losses, self.damaged = self.losses + 1, True

    def number(self, pts: int | None) -> int:
        """The next decoded frame's number, from its timestamp `pts` (None when it has none)."""
        self.recovered, self.failed = self.recovered + self.failed, 0
        if self.losses and self.slots is None:
            return self._after_loss(pts)
        placed = self._placed(pts)
        if placed is not None and placed > self.last:
            self.last = placed
            return placed
        self.last += 1
        # Decode order after damage, or a place already taken by another timestamp, is a guess; an intact stream
        # that repeats a timestamp (some recorders do) keeps its exact decode order.
        if self.damaged or (placed is not None and not self._repeated(pts)):
            self._doubt(self.last)
        return self.last

    def _repeated(self, pts: int | None) -> bool:
        """Whether timestamp `pts` came with more than one packet read so far (no index: ranks from the timeline)."""
        if pts is None or self.slots is not None:
            return False
        return bisect.bisect_right(self.timeline, pts) - bisect.bisect_left(self.timeline, pts) > 1

    def _after_loss(self, pts: int | None) -> int:
        """A frame's number once packets were lost unseen, always uncertain: its place on the timestamp grid when the
        stream kept to it before, else the next number."""
        grid = self._grid(pts) if pts is not None and self.on_grid and not self.counted else None
        self.last = grid if grid is not None and grid > self.last else self.last + 1
        self._doubt(self.last)
        return self.last

    def _grid(self, pts: int) -> int | None:
        """The frame number of timestamp `pts` at the container's constant rate (None without `frame_ticks`)."""
        if self.frame_ticks is None or not self.timeline:
            return None
        return round((pts - self.timeline[0]) / self.frame_ticks)

    def _doubt(self, number: int) -> None:
        """Record frame `number` as uncertain (extending the last range when it follows it)."""
        if self.uncertain and self.uncertain[-1][1] == number - 1:
            self.uncertain[-1] = (self.uncertain[-1][0], number)
        else:
            self.uncertain.append((number, number))

    def _placed(self, pts: int | None) -> int | None:
        """A frame's place from its timestamp: index slot, rank, or (after lost packets) grid; None when unknown."""
        if pts is None:
            return None
        if self.slots is not None:
            found = self.slot_of_pts.get(pts)
            return None if found is None else found[0]
        rank = bisect.bisect_left(self.timeline, pts)
        self.on_grid = self.on_grid and self._grid(pts) in (None, rank)
        return rank

    def tick(self, pts: int | None) -> int | None:
        """A frame's time in units of the stream's time base: its AVI index tick (the AVI demuxer's timestamps
        count the packets it read), else its timestamp; None when it has none."""
        if pts is not None and self.slots is not None:
            found = self.slot_of_pts.get(pts)
            return None if found is None else found[1]
        return pts

    def listed(self, declared: int) -> int | None:
        """Frames the container lists: the index's, else the packets' timestamps' or the declared count."""
        if self.slots is not None:
            return len(self.slots)
        return max(len(self.timeline), declared) or None


def _open_video(path: Path) -> av.container.InputContainer:
    """An opened PyAV container of `path` holding a video stream; FFPError naming the file otherwise."""
    if path.is_file() and path.stat().st_size == 0:
        raise FFPError(f"cannot open video file {path}: the file is empty (0 bytes)")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError:
        raise FFPError(
            f"cannot open video file {path}: not a video FFmpeg can decode (unsupported format, damaged header, "
            f"or not a video)"
        ) from None
    except OSError as exc:
        raise FFPError(f"cannot open video file {path}: {exc.strerror or exc}") from None
    if not container.streams.video:
        container.close()
        raise FFPError(f"cannot open video file {path}: it holds no video stream")
    return container


def _frame_ticks(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    """Timestamp ticks of one frame at the stream's rate, for containers that can lose packets without a trace
    (see `_Numbering`); None for MP4/MOV (a sample table lists every packet) and AVI (index or chunk trail)."""
    fps = _rate(stream)
    name = container.format.name
    if "mp4" in name or "mov" in name or name == "avi" or not fps or not stream.time_base:
        return None
    return 1.0 / (fps * float(stream.time_base))


def _lasts(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    """How long the container says the video lasts, in seconds, where it tells this from its timestamps and counts no
    frames (Matroska, WebM, FLV); None elsewhere: frame counts tell an early end better, and MPEG-PS/TS and raw
    streams only estimate durations from their bit rate."""
    if stream.frames > 0 or "mpeg" in container.format.name or container.format.name == "avi":
        return None
    return container.duration / 1e6 if container.duration else None


def _rate(stream: av.video.stream.VideoStream) -> float | None:
    """The stream's frame rate in frames/s (the average for a variable rate), or None when unusable."""
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    return fps if 0 < fps < 1000 else None


def _packets(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, trail: _ByteTrail | None
) -> Iterator[av.Packet]:
    """The stream's packets with data in file order, then one empty packet (flush the decoder); a read error ends the
    file (what was read counts). trail: every stream's packets are shown to it (a container that can lose packets
    unseen), so that it sees skipped bytes."""
    try:
        for packet in container.demux() if trail is not None else container.demux(stream):
            if trail is not None:
                trail.follow(packet)
            if packet.stream_index == stream.index and packet.size:  # empty ones: PyAV's flush, or no picture
                yield packet
    except av.error.FFmpegError:
        pass
    yield av.Packet()


# Bytes between two packets of a container without a packet table (Matroska, MPEG-TS/PS, FLV, …) that are more than
# its own overhead: block, cluster, tag and PES headers stay far below this, TS packet headers add ~2 % of a packet.
SKIPPED_BYTES_MIN, SKIPPED_BYTES_SHARE = 1024, 0.1


class _ByteTrail:
    """Follows the packets of every stream in file order: whether the demuxer skipped bytes between two packets (it
    resynchronises silently past damaged data, so packets there are lost without a trace).

    In an AVI (`avi`, read without an index) only whole filler chunks may lie between chunks; elsewhere a stretch
    longer than SKIPPED_BYTES_MIN + SKIPPED_BYTES_SHARE × the packet's size counts as skipped."""

    def __init__(self, path: Path, avi: bool):
        self.file = open(path, "rb") if avi else None
        self.expected: int | None = None  # where the next packet's data starts when nothing lies between
        self.resyncs = 0  # stretches of skipped bytes so far
        self.last_size = 0  # size of the previous packet (its container overhead grows with it)
        self.unplaced = 0  # bytes of packets without a known position since the last one with

    def follow(self, packet: av.Packet) -> None:
        """Note whether skipped bytes precede `packet`."""
        if packet.size == 0:
            return
        if packet.pos is None or packet.pos < 0:  # somewhere after the last known one (several in an MPEG-PS pack)
            self.unplaced += packet.size
            return
        expected, unplaced = self.expected, self.unplaced
        self.unplaced = 0
        if self.file is not None:  # AVI: the next chunk's 8-byte header, after the even-padded data
            self.expected = packet.pos + packet.size + (packet.size & 1) + 8
            skipped = expected is not None and packet.pos != expected and not _filler(self.file, expected, packet.pos)
        else:  # packets of interleaved streams may start before the previous one ends (MPEG-TS): the furthest end
            slack = SKIPPED_BYTES_MIN + SKIPPED_BYTES_SHARE * (max(packet.size, self.last_size) + unplaced)
            skipped = expected is not None and packet.pos - expected - unplaced > slack
            self.expected, self.last_size = max(expected or 0, packet.pos + packet.size), packet.size
        self.resyncs += skipped

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def _filler(file: BinaryIO, pos: int, target: int) -> bool:
    """Whether the bytes of an AVI `file` from data position `pos` up to `target` are whole filler chunks (list
    headers, JUNK, index chunks, empty chunks)."""
    while pos < target:
        file.seek(pos - 8)
        header = file.read(12)
        tag, size = header[:4], int.from_bytes(header[4:8], "little")
        if tag == b"LIST":
            pos += 12
        elif tag in (b"JUNK", b"idx1") or tag[:2] == b"ix" or (tag[:2].isdigit() and size == 0):
            pos += 8 + size + (size & 1)
        else:
            return False
    return pos == target


def _decoded(packet: av.Packet, stream, numbering: _Numbering) -> list[av.VideoFrame]:
    """The frames decoding `packet` completes; none when the decoder fails on it (counted as damage)."""
    try:
        return stream.codec_context.decode(packet if packet.size else None)
    except av.error.EOFError:  # flushed already
        return []
    except av.error.FFmpegError:
        numbering.damage()
        return []


def _numbered_frames(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, numbering: _Numbering
) -> Iterator[tuple[int, av.VideoFrame]]:
    """(frame number, decoded frame) of every frame of `stream`, in order; damaged packets counted and skipped."""
    lossy = numbering.counted or numbering.frame_ticks is not None
    trail = _ByteTrail(Path(container.name), avi=numbering.counted) if lossy else None
    try:
        for packet in _packets(container, stream, trail):
            while trail is not None and numbering.losses < trail.resyncs:
                numbering.lose()
            numbering.packet(packet)
            for frame in _decoded(packet, stream, numbering):
                yield numbering.number(frame.pts), frame
    finally:
        if trail is not None:
            trail.close()


class _Clock:
    """Times of the decoded frames in seconds, relative to the first: tick × the stream's time base, or one frame
    period (the container's rate, else config.FOLDER_FPS) after the previous frame for a frame without a tick."""

    def __init__(self, time_base: Fraction | None, fps: float | None):
        self.time_base, self.period = time_base, 1.0 / (fps or FOLDER_FPS)
        self.first: float | None = None
        self.times: list[float] = []

    def seconds(self, tick: int | None) -> float:
        """The next frame's time (seconds from the first frame), recorded in `times`."""
        if tick is not None and self.time_base is not None:
            time = float(tick * self.time_base)
            self.first = time if self.first is None else self.first
            self.times.append(time - self.first)
        else:
            self.times.append(self.times[-1] + self.period if self.times else 0.0)
        return self.times[-1]


_DYNAMIC_MMAP_MAX = 32 << 20  # glibc's largest dynamic mmap threshold on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX)
_reusable_bytes = 0  # the largest block size freed by `_reuse_frame_memory` so far in this process


def _reuse_frame_memory(frame_bytes: int) -> None:
    """Let the C allocator reuse memory for the per-frame RGB buffers of `frame_bytes` bytes FFmpeg converts into.

    glibc serves blocks above its mmap threshold (128 KiB at start) with fresh pages, each zero-filled at a page
    fault, and raises the threshold only when a larger such block is freed (mallopt(3), dynamic threshold). FFmpeg's
    aligned frame buffers never raised it: ~200 page faults a frame made decoding vtest.avi ~25 % slower than
    OpenCV. Allocating and freeing one block of twice the frame size once raises the threshold by glibc's own rule
    (elsewhere it is a harmless allocation)."""
    global _reusable_bytes
    size = min(2 * frame_bytes, _DYNAMIC_MMAP_MAX)
    if size > _reusable_bytes:
        np.empty(size, dtype=np.uint8)  # freed at once
        _reusable_bytes = size


def _fit_frame(to_rgb: VideoReformatter, frame: av.VideoFrame, height: int, width: int) -> np.ndarray:
    """A decoded frame as height×width×3 uint8 RGB: FFmpeg's conversion (the same pixels as OpenCV's FFmpeg backend
    gave), then `fit_rgb`. One reformatter per pass and one thread: swscale's default thread pool, next to the
    decoder's frame threads, made the conversion ~3× slower on 2 cores (measured on vtest.avi)."""
    return fit_rgb(to_rgb.reformat(frame, format="rgb24", threads=1).to_ndarray(), height, width)


def fit_rgb(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """H0×W0×3 uint8 RGB -> height×width×3 uint8 RGB, resized like `prepare_frame` (INTER_AREA when shrinking)."""
    h, w = rgb.shape[:2]
    if (h, w) == (height, width):
        return rgb
    shrink = h * w > height * width
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


_REPORTS: dict[tuple, DecodeReport] = {}  # decode results of this process, keyed by file version and stop


class VideoFile:
    """A video stored as one file that FFmpeg decodes, through PyAV (mp4, avi, mkv, mov, …).

    Frames are numbered by the container (see `DecodeReport`: an intact file 0..n-1 whatever its frame rate; frames
    after damaged data keep their numbers, the missing and the uncertain ones are reported). Reading is sequential
    (decoders are); random access goes through a frame cache (dataset.frame_cache). The frame count is known after
    one decode pass (`probe`, cached per file version for this process), never from the header (headers lie).
    `stop`: only frames numbered below it belong to this video (a cut, e.g. the normal part of a recording).
    """

    kind = "video file"

    def __init__(self, path: Path, stop: int | None = None):
        self.path, self.stop = Path(path), stop

    def _key(self) -> tuple:
        stat = self.path.stat()
        return str(self.path.resolve()), stat.st_size, stat.st_mtime_ns, self.stop

    def probe(self) -> DecodeReport:
        """Decode the file once (without converting frames) and report what was found (cached)."""
        key = self._key()
        if key not in _REPORTS:
            for _ in self._decode(0, 0, convert=False):
                pass
        return _REPORTS[key]

    def report(self) -> DecodeReport:
        """The decode report (probing the file if this process has not decoded it yet)."""
        return self.probe()

    def __len__(self) -> int:
        return self.probe().n_frames

    def numbers(self) -> np.ndarray:
        """(n,) int64 frame numbers in the source's timeline (see DecodeReport)."""
        return self.probe().numbers

    def frames(self, height: int, width: int) -> Iterator[tuple[int, np.ndarray]]:
        """Decode from the start: (frame number, height×width×3 uint8 RGB) of every frame, in order."""
        for number, _, rgb in self._decode(height, width, convert=True):
            yield number, rgb

    def timed_frames(self, height: int, width: int) -> Iterator[tuple[int, float, np.ndarray]]:
        """Decode from the start: (frame number, time in seconds from the first frame (the container's timestamps),
        height×width×3 uint8 RGB) of every frame, in order."""
        yield from self._decode(height, width, convert=True)

    def container(self) -> tuple[float | None, int, int, int]:
        """What the container declares: (frame rate in frames/s or None when unusable, the frames it lists (its
        index's count for an AVI, else its declared count; 0 when unknown; informative only, see `probe`), height,
        width in pixels). FFPError when the file cannot be opened."""
        with _open_video(self.path) as container:
            stream = container.streams.video[0]
            slots = avi_frame_slots(self.path, stream.index) if container.format.name == "avi" else None
            listed = len(slots) if slots is not None else max(stream.frames, 0)
            return _rate(stream), listed, stream.codec_context.height, stream.codec_context.width

    def head(self, n: int) -> VideoFile:
        """The same video cut to its frames numbered below n."""
        return VideoFile(self.path, n if self.stop is None else min(n, self.stop))

    @overload
    def _decode(self, height: int, width: int, convert: Literal[True]) -> Iterator[tuple[int, float, np.ndarray]]: ...

    @overload
    def _decode(self, height: int, width: int, convert: Literal[False]) -> Iterator[tuple[int, float, None]]: ...

    def _decode(self, height: int, width: int, convert: bool) -> Iterator[tuple[int, float, np.ndarray | None]]:
        """The decode loop: demux, number (`_Numbering`), decode, convert; damaged packets are counted and skipped.

        A pass that reaches the end (or `stop`) records its DecodeReport for this process; with `stop` the
        report has no header count (the tail is cut on purpose, not missing).
        """
        key = self._key()
        with _open_video(self.path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # as OpenCV's FFmpeg backend: frame threads, output still in order
            if convert:
                _reuse_frame_memory(3 * stream.codec_context.width * stream.codec_context.height)
            avi = container.format.name == "avi"
            slots = avi_frame_slots(self.path, stream.index) if avi else None
            to_rgb, numbering, clock, numbers = (
                VideoReformatter(),
                _Numbering(slots, avi and slots is None, _frame_ticks(container, stream)),
                _Clock(stream.time_base, _rate(stream)),
                [],
            )
            for number, frame in _numbered_frames(container, stream, numbering):
                if self.stop is not None and number >= self.stop:
                    break
                numbers.append(number)
                seconds = clock.seconds(numbering.tick(frame.pts))
                yield number, seconds, _fit_frame(to_rgb, frame, height, width) if convert else None
            cut = self.stop is not None
            _REPORTS[key] = DecodeReport(
                self.path,
                np.asarray(numbers, dtype=np.int64),
                _rate(stream),
                None if cut or stream.frames <= 0 else int(stream.frames),
                numbering.recovered,
                np.asarray(clock.times, dtype=np.float64),
                None if cut else numbering.listed(max(stream.frames, 0)),
                numbering.uncertain,
                None if cut else _lasts(container, stream),
            )

    def __repr__(self) -> str:
        return f"VideoFile({str(self.path)!r}{'' if self.stop is None else f', stop={self.stop}'})"


FrameSource = FrameFolder | VideoFile


def open_source(path: Path) -> FrameSource:
    """A FrameFolder for a folder, a VideoFile for a file with a video extension; FFPError otherwise."""
    path = Path(path)
    if path.is_dir():
        return FrameFolder(path)
    if is_video_file(path):
        return VideoFile(path)
    if not path.exists():
        raise FFPError(f"{path} does not exist (expected a video file or a folder of frames)")
    raise FFPError(f"{path} is neither a folder of frames nor a video file ({', '.join(VIDEO_EXTS[:8])}, …)")
