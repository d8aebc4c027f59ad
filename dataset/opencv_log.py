"""OpenCV's C-level logging, quieter while the project reports failures itself in one line."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import cv2


@contextmanager
def opencv_log_at_most(level: int) -> Iterator[None]:
    """OpenCV's C-level log at `level` or quieter inside the block (e.g. cv2.utils.logging.LOG_LEVEL_SILENT while
    probing files, whose failures the project reports itself in one line); the previous level comes back after.
    Every OpenCV video capture and writer of the project is opened inside this block."""
    # FFmpeg inside OpenCV prints a line per damaged macroblock unless this is set before its first use (it is read
    # once); set here, on first use, rather than at import, so that importing the project changes no environment.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    previous = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(min(previous, level))
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(previous)
