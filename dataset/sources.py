"""Where a video's frames come from: a folder of images or a video file, behind one interface.

    source = open_source(Path("training/01"))        # FrameFolder
    source = open_source(Path("training/01_001.avi")) # VideoFile (anything cv2.VideoCapture decodes)
    len(source); source.numbers(); source.frames(height, width) -> (number, H×W×3 uint8 RGB) in order

Frames get one preprocessing whatever their origin (`prepare_frame`: RGB, resized to the config size).
Video files are counted by DECODING them, never by the container's frame count (headers lie: OpenCV's
sample tree.avi declares 444 frames and 68 decode). Every decoded frame gets its number in the source's
own timeline, from the decoder's timestamps (`VideoFile`), so a file with a damaged middle keeps true
numbers after the gap; gaps and early ends are reported by `DecodeReport.problems()`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, overload

import cv2
import numpy as np
import torch

from utils import FFPError

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
# Consecutive failed reads after which a video file counts as ended. A damaged region costs one failed
# read per damaged packet (26 for 26 zeroed frames of an MPEG-4 file); a real end fails at once, cheaply.
MAX_DECODE_RETRIES = 250


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
    """uint8 [0, 255] (any shape) -> float32 in [-1, 1], on the tensor's device."""
    return frames.float().div_(127.5).sub_(1.0)


# ----------------------------------------------------------------------------------------------- folders
class FrameFolder:
    """A video stored as a folder of image files (sorted naturally; hidden files and OS droppings skipped).

    Frame numbers are positions in that order, 0-based. Reading is random access.
    """

    kind = "video folder"

    def __init__(self, path: Path, files: list[Path] | None = None):
        self.path = Path(path)
        self.files = list_images(self.path) if files is None else list(files)

    def __len__(self) -> int:
        return len(self.files)

    def numbers(self) -> np.ndarray:
        """(n,) int64 frame numbers: 0..n-1."""
        return np.arange(len(self.files), dtype=np.int64)

    def read(self, index: int, height: int, width: int) -> np.ndarray:
        """Frame `index` (0-based position) as height×width×3 uint8 RGB."""
        return read_frame(self.files[index], height, width)

    def frames(self, height: int, width: int) -> Iterator[tuple[int, np.ndarray]]:
        """(frame number, height×width×3 uint8 RGB) of every frame, in order."""
        for i, path in enumerate(self.files):
            yield i, read_frame(path, height, width)

    def head(self, n: int) -> FrameFolder:
        """The same video cut to its frames numbered below n (its first n frames)."""
        return FrameFolder(self.path, self.files[:n])

    def report(self) -> DecodeReport | None:
        """Folders have no decoding problems to report (a bad image is an error of its own)."""
        return None

    def __repr__(self) -> str:
        return f"FrameFolder({str(self.path)!r}, {len(self.files)} frames)"


# ----------------------------------------------------------------------------------------------- video files
@dataclass
class DecodeReport:
    """What decoding a video file to its end found.

    numbers: (n,) int64 frame number of every decoded frame in the source's timeline (timestamp × the
    container's frame rate, relative to the first frame; decode order where timestamps are unusable);
    header_frames: the container's declared frame count (None when it declares none) — informative only.
    """

    path: Path
    numbers: np.ndarray
    fps: float | None
    header_frames: int | None
    retries: int = 0  # failed reads that were followed by a good frame (damaged packets skipped)

    @property
    def n_frames(self) -> int:
        """Number of frames that decoded."""
        return int(len(self.numbers))

    def gaps(self) -> list[tuple[int, int]]:
        """(last frame before, first frame after) for every jump in the frame numbers (see `gaps_after`)."""
        return [(int(self.numbers[i]), int(self.numbers[i + 1])) for i in gaps_after(self.numbers)]

    def missing_tail(self) -> int:
        """Frames the header declares after the last decoded one (0 when it declares none or they all came)."""
        if not self.header_frames or not self.n_frames:
            return 0
        missing = self.header_frames - int(self.numbers[-1]) - 1
        return missing if missing >= gap_limit(self.numbers) else 0

    def problems(self) -> list[str]:
        """Human-readable damage findings (empty when the file decoded whole)."""
        found = []
        gaps = self.gaps()
        if gaps:
            shown = ", ".join(f"{a + 1}-{b - 1}" for a, b in gaps[:5]) + (" …" if len(gaps) > 5 else "")
            found.append(
                f"{sum(b - a - 1 for a, b in gaps)} frames missing in {len(gaps)} gap(s) (frames {shown}: "
                f"damaged data the decoder skipped; later frames keep their true numbers)"
            )
        if self.retries and not gaps:
            # Reads failed part-way and decoding recovered, yet the timestamps show no gap: the file carries no
            # usable timestamps (numbers follow decode order) or the damage cost no frame. Either way the frame
            # numbers after it cannot be trusted to match labels.
            found.append(
                f"the decoder failed {self.retries} time(s) part-way through and recovered (damaged data; "
                f"without usable timestamps the frames after it may be renumbered)"
            )
        tail = self.missing_tail()
        if tail:
            found.append(
                f"decoding stopped after frame {int(self.numbers[-1])} but the header declares "
                f"{self.header_frames} frames ({tail} missing at the end: the file is cut or damaged; "
                f"in some containers damage also shifts the numbers of the frames after it)"
            )
        return found

    def summary(self) -> dict:
        """JSON-able facts for result files."""
        return {
            "decoded_frames": self.n_frames,
            "header_frames": self.header_frames,
            "fps": self.fps,
            "first_frame": int(self.numbers[0]) if self.n_frames else None,
            "last_frame": int(self.numbers[-1]) if self.n_frames else None,
            "gaps": [list(g) for g in self.gaps()],
            "missing_at_end": self.missing_tail(),
            "decode_retries": self.retries,
            "problems": self.problems(),
        }


def gap_limit(numbers: np.ndarray) -> float:
    """Smallest jump between consecutive frame numbers that means frames are missing: max(2, 2 × the median step).

    The median step keeps variable-frame-rate files (a new picture every ~6 timeline slots) from reporting every
    step as a gap, while a constant-rate file reports even one missing frame.
    """
    steps = np.diff(np.asarray(numbers))
    return max(2.0, 2.0 * float(np.median(steps))) if len(steps) else 2.0


def gaps_after(numbers: np.ndarray) -> np.ndarray:
    """Indices i such that frames are missing between numbers[i] and numbers[i + 1] (a jump ≥ `gap_limit`)."""
    numbers = np.asarray(numbers)
    return np.flatnonzero(np.diff(numbers) >= gap_limit(numbers))


class _Timeline:
    """Turns decoder timestamps into frame numbers of the source's timeline, strictly increasing."""

    first_ms: float | None  # timestamp of the first numbered frame, once seen

    def __init__(self, fps: float | None):
        self.fps, self.first_ms, self.last = fps, None, -1

    def number(self, ms: float) -> int:
        """Number of the frame shown at `ms` (relative to the first frame); the next number if timestamps
        are missing or go backwards (then decode order is the best truth there is)."""
        if self.fps and ms >= 0:
            if self.first_ms is None:
                self.first_ms = ms
            candidate = int(round((ms - self.first_ms) * self.fps / 1000.0))
            self.last = candidate if candidate > self.last else self.last + 1
        else:
            self.last += 1
        return self.last


def _video_capture(path: Path) -> cv2.VideoCapture:
    """An opened cv2.VideoCapture of `path`; FFPError naming the file when OpenCV cannot open it."""
    with opencv_log_at_most(_cv_log.LOG_LEVEL_SILENT):
        capture = cv2.VideoCapture(str(path))
        opened = capture.isOpened()
    if not opened:
        capture.release()
        why = (
            "the file is empty (0 bytes)"
            if path.is_file() and path.stat().st_size == 0
            else "not a video OpenCV can decode (unsupported codec, damaged header, or not a video)"
        )
        raise FFPError(f"cannot open video file {path}: {why}")
    return capture


def _declared(capture: cv2.VideoCapture) -> tuple[float | None, int, int, int]:
    """An opened capture's container facts: (frame rate or None when unusable, frame count or 0, height, width)."""
    fps = capture.get(cv2.CAP_PROP_FPS)
    return (
        fps if 0 < fps < 1000 else None,
        max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0),
        int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
    )


_REPORTS: dict[tuple, DecodeReport] = {}  # decode results of this process, keyed by file version and stop


class VideoFile:
    """A video stored as one file that cv2.VideoCapture decodes (mp4, avi, mkv, mov, …).

    Reading is sequential (decoders are); random access goes through a frame cache (dataset.frame_cache).
    The frame count is known after one decode pass (`probe`, cached per file version for this process).
    `stop`: only frames numbered below it belong to this video (a cut, e.g. the normal part of a recording).
    """

    kind = "video file"

    def __init__(self, path: Path, stop: int | None = None):
        self.path, self.stop = Path(path), stop

    def _key(self) -> tuple:
        stat = self.path.stat()
        return str(self.path.resolve()), stat.st_size, stat.st_mtime_ns, self.stop

    def probe(self) -> DecodeReport:
        """Decode the file once (without resizing or RGB conversion) and report what was found (cached)."""
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
        yield from self._decode(height, width, convert=True)

    def container(self) -> tuple[float | None, int, int, int]:
        """What the container declares: (frame rate in frames/s or None when unusable, frame count (0 when
        unknown; informative only, see `probe`), height, width in pixels). FFPError when OpenCV cannot open it."""
        capture = _video_capture(self.path)
        try:
            return _declared(capture)
        finally:
            capture.release()

    def head(self, n: int) -> VideoFile:
        """The same video cut to its frames numbered below n."""
        return VideoFile(self.path, n if self.stop is None else min(n, self.stop))

    @overload
    def _decode(self, height: int, width: int, convert: Literal[True]) -> Iterator[tuple[int, np.ndarray]]: ...

    @overload
    def _decode(self, height: int, width: int, convert: Literal[False]) -> Iterator[tuple[int, None]]: ...

    def _decode(self, height: int, width: int, convert: bool) -> Iterator[tuple[int, np.ndarray | None]]:
        """The decode loop: grab, retrieve, number; retries past damaged packets (MAX_DECODE_RETRIES).

        A pass that reaches the end (or `stop`) records its DecodeReport for this process; with `stop` the
        report has no header count (the tail is cut on purpose, not missing).
        """
        key = self._key()
        capture = _video_capture(self.path)
        try:
            fps, header, _, _ = _declared(capture)
            timeline, numbers, failures, retries = _Timeline(fps), [], 0, 0
            while True:
                ok = capture.grab()
                image = None
                if ok:  # retrieved in the probe as well, so that both passes count the same frames
                    ok, image = capture.retrieve()
                if not ok:
                    failures += 1
                    if failures > MAX_DECODE_RETRIES:
                        break
                    continue
                assert image is not None  # ok: retrieve() returned a frame
                retries, failures = retries + failures, 0
                number = timeline.number(capture.get(cv2.CAP_PROP_POS_MSEC))
                if self.stop is not None and number >= self.stop:
                    break
                numbers.append(number)
                yield number, (prepare_frame(image, height, width) if convert else None)
            declared = header if header > 0 and self.stop is None else None
            _REPORTS[key] = DecodeReport(self.path, np.asarray(numbers, dtype=np.int64), fps, declared, retries)
        finally:
            capture.release()

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
