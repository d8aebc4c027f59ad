"""A video stored as one file that FFmpeg decodes (through PyAV): its frames, their numbers and times, and a decode
report of what was found (missing frames, uncertain numbers, an early end).

Video files are counted by DECODING them, never by the container's frame count (headers lie: OpenCV's sample
tree.avi declares 444 frames and 68 decode). Frame numbers come from the container (`container_index`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Literal, overload

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from config import FOLDER_FPS
from errors import FFPError

from .container_index import Numbering, avi_frame_slots, numbered_frames
from .frame_numbers import gaps_after, ranges_text
from .preprocess import resize_to


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
    numbers are estimates (after damaged data that neither an index nor timestamps let count, see `Numbering`);
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
            shown = ranges_text([(a + 1, b - 1) for a, b in gaps])
            kept = "" if self.uncertain else "; the frames after keep their true numbers, from the container"
            found.append(
                f"{sum(b - a - 1 for a, b in gaps)} frames missing in {len(gaps)} gap(s) (frames {shown}: "
                f"damaged data the decoder could not read{kept})"
            )
        if self.uncertain:
            shown = ranges_text(self.uncertain)
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
    (see `Numbering`); None for MP4/MOV (a sample table lists every packet) and AVI (index or chunk trail)."""
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
    gave), then `preprocess.resize_to`. One reformatter per pass and one thread: swscale's default thread pool, next
    to the decoder's frame threads, made the conversion ~3× slower on 2 cores (measured on vtest.avi)."""
    return resize_to(to_rgb.reformat(frame, format="rgb24", threads=1).to_ndarray(), height, width)


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
        """The decode loop: demux, number (`Numbering`), decode, convert; damaged packets are counted and skipped.

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
                Numbering(slots, avi and slots is None, _frame_ticks(container, stream)),
                _Clock(stream.time_base, _rate(stream)),
                [],
            )
            for number, frame in numbered_frames(container, stream, numbering):
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
