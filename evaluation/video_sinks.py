"""Where heatmap videos are encoded: H.264 through PyAV (browsers play it), or OpenCV's 'mp4v' when PyAV has no
H.264 encoder (desktop players only; a one-line warning says so, once per process). Both report a failed or short
write as an OSError instead of leaving a broken file unnoticed."""

from __future__ import annotations

import sys
from fractions import Fraction
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from dataset import opencv_log_at_most

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov")  # ISO-BMFF containers: the ones that hold H.264 with faststart
H264_ENCODER = "libx264"
H264_OPTIONS = {"crf": "23", "preset": "veryfast"}  # visually fine; ~real time for 3 x 256 px panels on 2 cores
_FALLBACK_WARNED = False


@cache
def h264_module():
    """The `av` module when it imports and has an H.264 encoder (libx264), else None (checked once)."""
    try:
        import av
    except ImportError:
        return None
    return av if H264_ENCODER in av.codecs_available else None


def video_backend() -> str:
    """The codec HeatmapVideoWriter uses when none is asked for: 'h264' (PyAV + libx264) or 'mp4v' (OpenCV)."""
    return "h264" if h264_module() is not None else "mp4v"


def warn_fallback() -> None:
    """One stderr line per process: the mp4v videos will not play in a browser, and how to fix it."""
    global _FALLBACK_WARNED
    if not _FALLBACK_WARNED:
        _FALLBACK_WARNED = True
        print(
            "warning: PyAV with an H.264 encoder is not available, so heatmap videos are written as MPEG-4 "
            "Part 2 ('mp4v'), which browsers cannot play (desktop players can); fix: pip install av",
            file=sys.stderr,
        )


class H264Sink:
    """H.264 (libx264, yuv420p) in an mp4 container through PyAV, moov atom moved to the front on close.

    Raises OSError (PyAV's av.error.OSError is one) or av.FFmpegError when encoding or writing fails.
    """

    def __init__(self, av, tmp: Path, fps: Fraction, frame_size: tuple[int, int]):
        self._av, self._tmp, self._pts = av, tmp, 0
        # The temp file's suffix is .tmp.mp4 (etc.), so FFmpeg picks the container from its name;
        # +faststart puts the index first so a browser can start playing before the whole file arrives.
        self._container = av.open(str(tmp), "w", options={"movflags": "+faststart"})
        try:
            self._stream = self._container.add_stream(H264_ENCODER, rate=fps, options=dict(H264_OPTIONS))
            self._stream.width, self._stream.height = frame_size
            self._stream.pix_fmt = "yuv420p"  # 4:2:0: the only chroma layout every browser decodes
            self._stream.codec_context.time_base = self._time_base = 1 / fps
        except BaseException:
            self._container.close()
            raise

    def write(self, bgr: np.ndarray) -> None:
        """Encode one H x W x 3 BGR uint8 frame (converted to yuv420p by PyAV) and mux its packets."""
        frame = self._av.VideoFrame.from_ndarray(bgr, format="bgr24")
        frame.pts, frame.time_base = self._pts, self._time_base
        self._pts += 1
        self._mux(self._stream.encode(frame))

    def _mux(self, packets) -> None:
        """Write encoded packets to the file (a method of its own so tests can make it fail)."""
        self._container.mux(packets)

    def finish(self) -> None:
        """Flush the encoder and write the index (faststart rewrites the file here); errors as `write`."""
        self._mux(self._stream.encode(None))
        self._container.close()

    def discard(self) -> None:
        """Close after a failure or abort, ignoring further errors (the file is deleted anyway)."""
        try:
            self._container.close()
        except Exception:  # noqa: BLE001 - the first error is the one reported
            pass


def _has_mp4_index(path: Path) -> bool:
    """True when the file's top-level ISO-BMFF boxes fill it exactly and include 'moov' (the index).

    A writer cut short (full disk) leaves a truncated last box and no 'moov', which no player can open.
    """
    found, end = set(), path.stat().st_size
    with open(path, "rb") as f:
        at = 0
        while at < end:
            f.seek(at)
            head = f.read(16)
            if len(head) < 8:
                return False
            size, kind = int.from_bytes(head[:4], "big"), head[4:8]
            if size == 1 and len(head) == 16:  # 64-bit size follows the type
                size = int.from_bytes(head[8:16], "big")
            elif size == 0:  # box runs to the end of the file
                size = end - at
            if size < 8 or at + size > end:
                return False
            found.add(kind)
            at += size
    return b"moov" in found


class Mp4vSink:
    """OpenCV's MPEG-4 Part 2 ('mp4v'): the fallback without PyAV. Browsers cannot play it.

    cv2.VideoWriter reports no write errors (write returns None, a full disk goes unnoticed), so `finish`
    re-opens the file and raises OSError unless it holds every frame written. OpenCV's own per-frame
    "Failed to write frame" warnings are muted meanwhile: that one OSError is the report.
    """

    def __init__(self, tmp: Path, fps: Fraction, frame_size: tuple[int, int]):
        self._tmp, self._frames = tmp, 0
        fourcc = cv2.VideoWriter_fourcc(*"mp4v")  # type: ignore[attr-defined]  # exists, but not in cv2's stubs
        with opencv_log_at_most(cv2.utils.logging.LOG_LEVEL_ERROR):
            self._writer = cv2.VideoWriter(str(tmp), fourcc, float(fps), frame_size)
        if not self._writer.isOpened():
            raise OSError(f"OpenCV cannot open an 'mp4v' writer, frame {frame_size[0]}x{frame_size[1]}")

    def write(self, bgr: np.ndarray) -> None:
        """Append one H x W x 3 BGR uint8 frame."""
        self._write_frame(bgr)
        self._frames += 1

    def _write_frame(self, bgr: np.ndarray) -> None:
        """cv2's write, in a method of its own so tests can make it drop frames silently."""
        with opencv_log_at_most(cv2.utils.logging.LOG_LEVEL_ERROR):
            self._writer.write(bgr)

    def finish(self) -> None:
        """Release the writer, then check the file: OSError when it is empty or holds fewer frames."""
        with opencv_log_at_most(cv2.utils.logging.LOG_LEVEL_ERROR):
            self._writer.release()
            size = self._tmp.stat().st_size
            # The box check first: FFmpeg would log "moov atom not found" opening a truncated file.
            cap = cv2.VideoCapture(str(self._tmp)) if _has_mp4_index(self._tmp) else None
            found = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap is not None and cap.isOpened() else 0
            if cap is not None:
                cap.release()
        if found < self._frames:
            raise OSError(f"the written file holds {found} of {self._frames} frames ({size} bytes; disk full?)")

    def discard(self) -> None:
        """Release the writer (the file is deleted by the caller)."""
        self._writer.release()


def is_av_error(exc: BaseException) -> bool:
    """True for PyAV's FFmpeg errors (some of which are also ValueError), False without PyAV."""
    av = h264_module()
    return av is not None and isinstance(exc, av.FFmpegError)


def short_reason(exc: BaseException) -> str:
    """An exception as a short reason: an OSError's strerror ('No space left on device'), else its text."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
