"""Which files are frames, videos or junk, and their natural order: what every folder listing uses."""

from __future__ import annotations

import re
from pathlib import Path

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


def canonical(name: str) -> str:
    """Video-name key that matches '1', '01' and '001' (numeric names), and a file's stem to its folder name."""
    stem = Path(name).stem if Path(name).suffix.lower() in VIDEO_EXTS else name
    return str(int(stem)) if stem.isdigit() else stem
