"""The extraction cache: a training video FILE decoded once into JPEG frames, for random access to its frames.

Video files decode only sequentially, so when the training frames do not fit in RAM (see `windows.FrameStore`)
each file is extracted once into <cache_dir>/frames/<stem>-<key>/ (never under --data_root), with a progress
display. The key holds the file's path, size and modification time, the frame size and the cut (--train_until):
the extraction is reused by later runs and redone when the file changes; extractions of an older version of the
file and temp folders of crashed extractions are removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import cv2

from errors import FFPError
from utils.files import atomic_write_text, remove_dead_staging, staging_folder
from utils.progress import PlainLines, Progress

from .folders import FrameFolder
from .videos import VideoFile

MANIFEST = "manifest.json"
JPEG_QUALITY = 95  # extraction cache: visually lossless, ~10× smaller than raw frames


def _cache_key(source: VideoFile, height: int, width: int) -> str:
    """Name part of an extraction folder: the file, its version, the frame size and the cut."""
    size, mtime_ns = _file_version(source.path)
    ident = f"{source.path.resolve()}|{size}|{mtime_ns}|{height}x{width}|{source.stop}|numbered"
    return hashlib.sha1(ident.encode()).hexdigest()[:12]


def _file_version(path: Path) -> list[int]:
    """[size in bytes, modification time in ns]: what tells one version of a video file from the next."""
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def _remove_stale(base: Path, source: Path) -> None:
    """Delete extractions of `source` made from an older version of the file (nobody can use them again) and
    temp folders of crashed extractions (their process is gone). Extractions of the current file at another
    size or `--train_until` stay: another run may be reading them. Only folders of this cache layout are touched."""
    version = _file_version(source)
    remove_dead_staging(base)
    for folder in base.iterdir():
        if (folder / MANIFEST).is_file():
            try:
                manifest = json.loads((folder / MANIFEST).read_text())
            except (OSError, ValueError):
                continue
            old = manifest.get("file_version")  # absent in extractions of older code: left alone
            if manifest.get("source") == str(source) and old is not None and old != version:
                shutil.rmtree(folder, ignore_errors=True)


def extracted_frames(source: VideoFile, height: int, width: int, cache_dir: str | Path, expected: int) -> FrameFolder:
    """A video file's frames at height×width as JPEG files under <cache_dir>/frames/, extracted once.

    Each frame is stored under its frame number (000000.jpg, …; a damaged file's missing frames leave gaps), so the
    returned FrameFolder (0-based) has the file's frame numbers; `expected` is the frame count shown by the progress
    display. Reused while the file's size and modification time are unchanged; a crashed
    extraction leaves only a temp folder (removed by a later run). FFPError naming the cache folder when it cannot
    be written.
    """
    base = Path(cache_dir) / "frames"
    stem = re.sub(r"[^A-Za-z0-9_-]", "_", source.path.stem)
    folder = base / f"{stem}-{_cache_key(source, height, width)}"
    if (folder / MANIFEST).is_file():
        return FrameFolder(folder, base=0)
    try:
        base.mkdir(parents=True, exist_ok=True)
        _remove_stale(base, source.path.resolve())
        tmp = staging_folder(base, folder.name)
    except OSError as exc:
        raise FFPError(f"--cache_dir {base}: cannot create the frame cache ({exc.strerror or exc})") from None
    progress = Progress(expected, f"extracting {source.path.name}", unit="frame", lines=PlainLines(200))
    try:
        for number, rgb in source.frames(height, width):
            ok, jpeg = cv2.imencode(
                ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
            )
            (tmp / f"{number:06d}.jpg").write_bytes(jpeg.tobytes())
            progress.update()
        report = source.report()
        atomic_write_text(
            tmp / MANIFEST,
            json.dumps(
                {
                    "source": str(source.path.resolve()),
                    "height": height,
                    "width": width,
                    "file_version": _file_version(source.path),
                    **report.summary(),
                }
            ),
        )
        os.replace(tmp, folder)  # not install_folder: another run's finished extraction is kept, never swapped
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if (folder / MANIFEST).is_file():  # another run extracted the same file meanwhile: use its frames
            return FrameFolder(folder, base=0)
        raise FFPError(
            f"--cache_dir {base}: cannot write the frame cache of {source.path} ({exc.strerror or exc})"
        ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        progress.close()
    return FrameFolder(folder, base=0)
