"""What a --video value names when it is not a file or folder: a stream URL or a camera (torch-free, OpenCV-free:
detect.py decides this while parsing its flags)."""

from __future__ import annotations

import os
import re

from errors import FFPError

# Live sources (detect.py --video): URL schemes opened through OpenCV's FFmpeg backend, and how many reconnection
# attempts in a row a lost source gets (dataset/live.py RetryPolicy: waits from 0.5 s doubling to 10 s).
LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt", "rtp")
RETRY_ATTEMPTS = 10


def live_target(text: str) -> str | int | None:
    """What to open for a --video value, or None when it names a file or folder.

    A URL with a streaming scheme (LIVE_SCHEMES) stays a string; a bare number ('0') is a camera index and
    '/dev/videoN' a camera device, unless a file or folder of that name exists (then it is a path). FFPError for
    another scheme ('ftp://…', 'file://…').
    """
    match = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", text)
    if match:
        if match.group(1).lower() not in LIVE_SCHEMES:
            raise FFPError(
                f"--video {text}: '{match.group(1)}://' is not a streaming source (expected one of "
                f"{', '.join(s + '://' for s in LIVE_SCHEMES)}, a camera such as 0 or /dev/video0, a file or a folder)"
            )
        return text
    if os.path.exists(text):
        return None
    if re.fullmatch(r"\d{1,3}", text):
        return int(text)
    if re.fullmatch(r"/dev/video\d+", text):
        return text
    return None


def describe_target(target: str | int) -> str:
    """How a live target is named in messages: the URL without a password, or 'camera 0'."""
    if isinstance(target, int):
        return f"camera {target}"
    return re.sub(r"//([^/@:]+):[^/@]*@", r"//\1:***@", target)
