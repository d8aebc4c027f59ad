"""What a training run writes beside its checkpoints: the TensorBoard log, and the lock that keeps two runs apart.

RunLog writes TensorBoard events synchronously (tensorboardX's record writer, no background thread): a
full disk is an FFPError naming the folder at the next flush instead of a writer thread that dies and a
queue that blocks training forever. It is flushed at every checkpoint, and a resumed run starts with a
`purge_step` marker so TensorBoard drops the events a killed run wrote after its last checkpoint: the
curves of a resumed run equal those of an uninterrupted one.

RunLock holds an flock() on `<folder>/.<dataset>.lock` for the whole run: a second run writing the same
checkpoints or log refuses at start, and the lock dies with its process (kill -9 included), so a crash
never leaves it stuck (the file of a killed run stays behind, unlocked, and the next run takes it).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import time
from pathlib import Path
from typing import TextIO

import numpy as np
from tensorboardX.event_file_writer import EventsWriter
from tensorboardX.proto.event_pb2 import Event, SessionLog
from tensorboardX.summary import image, scalar

from errors import FFPError
from utils.files import atomic_write_bytes


class RunLog:
    """TensorBoard scalars and images of one run, written in the caller's thread.

    folder: the run's log folder (created); purge_step: on resume, the first step after the checkpoint's —
    TensorBoard discards this folder's earlier events at or after it (a killed run's tail).
    Every OSError (disk full, folder removed) becomes one FFPError naming `folder`.
    """

    def __init__(self, folder: str | os.PathLike, purge_step: int | None = None):
        self.folder = Path(folder)
        # The suffix keeps event files of runs started within the same second in start order (TensorBoard
        # reads them sorted by name, and a resume's purge marker must come after the killed run's events).
        self._writer = self._call(
            lambda: EventsWriter(str(self.folder / "events"), filename_suffix=f".{time.time_ns()}.{os.getpid()}")
        )
        if purge_step is not None:
            self._write(
                Event(wall_time=time.time(), step=int(purge_step), session_log=SessionLog(status=SessionLog.START))
            )

    def _call(self, fn):
        try:
            return fn()
        except OSError as exc:
            raise FFPError(
                f"--log_dir {self.folder}: cannot write the TensorBoard log ({exc.strerror or exc}); "
                f"free space there or choose another --log_dir"
            ) from None

    def _write(self, event: Event) -> None:
        self._call(lambda: self._writer.write_event(event))

    def scalar(self, tag: str, value: float, step: int) -> None:
        """One scalar value at `step`."""
        self._write(Event(wall_time=time.time(), step=int(step), summary=scalar(tag, float(value))))

    def images(self, tag: str, images: np.ndarray, step: int) -> None:
        """A grid of N×C×H×W float images in [0, 1] (C = 1 or 3) at `step`."""
        self._write(
            Event(
                wall_time=time.time(),
                step=int(step),
                summary=image(tag, np.asarray(images, dtype=np.float32), dataformats="NCHW"),
            )
        )

    def flush(self) -> None:
        """Push everything written so far to disk (fsync)."""
        self._call(self._writer.flush)

    def close(self) -> None:
        """Flush and close the event file (a full disk raises FFPError naming the folder)."""
        self._call(self._writer.close)


class RunTraces:
    """What a run adds to its output folders, so that a run failing before its first training step (bad data
    found late, e.g. a truncated frame read by a DataLoader worker) leaves nothing behind.

    Folders: those this run created are removed when empty (safe at any time: rmdir only removes empty ones).
    Files: only in the run's own log folder (<log_dir>/<dataset>, which the run lock reserves for this run), only
    files that appeared after `snapshot()` — taken once the lock is held, so no other run's files can be among
    them — and a config.json that was there before gets its old content back. Never anything in --weights_dir
    (shared by all datasets; a run writes nothing there before step 1). A run that trained keeps its log.
    """

    def __init__(self, folders: list[Path], run_dir: Path):
        self.created: list[Path] = []
        for folder in dict.fromkeys(Path(f) for f in folders):
            missing = folder
            while not missing.exists() and missing != missing.parent:
                self.created.append(missing)
                missing = missing.parent
        self.run_dir = Path(run_dir)
        self.before: set[Path] | None = None
        self.old_config: bytes | None = None
        self.trained = False

    def snapshot(self) -> None:
        """Record what the log folder holds now. Call right after the run lock was acquired."""
        self.before = set(self.run_dir.iterdir()) if self.run_dir.is_dir() else set()
        config = self.run_dir / "config.json"
        self.old_config = config.read_bytes() if config.is_file() else None

    def remove_files(self) -> None:
        """Delete the files this run added to its log folder since `snapshot()` (its lock file predates the
        snapshot; RunLock.release removes it) and restore a config.json it overwrote. Call holding the lock."""
        if self.before is None or not self.run_dir.is_dir():
            return
        for path in set(self.run_dir.iterdir()) - self.before:
            if path.is_file():
                path.unlink(missing_ok=True)
        if self.old_config is not None:
            atomic_write_bytes(self.run_dir / "config.json", self.old_config)

    def remove_folders(self) -> None:
        """Remove the folders this run created, each only if it is empty (after the lock was released)."""
        for folder in sorted(set(self.created), key=lambda p: len(p.parts), reverse=True):
            try:
                folder.rmdir()
            except OSError:
                pass


class RunLock:
    """Exclusive flock()s on `.<dataset>.lock` in each folder a run writes (weights and log folders).

    acquire() raises FFPError naming the folder and the holder (pid, host, start time, command) when another
    live process holds one; release() (or the process ending, however it ends) frees them.
    """

    def __init__(self, folders: list[Path], dataset: str):
        self.paths = [f / f".{dataset}.lock" for f in dict.fromkeys(Path(f).resolve() for f in folders)]
        self._files: list[TextIO] = []

    def acquire(self) -> RunLock:
        for path in self.paths:
            handle = self._lock(path)
            handle.seek(0)
            handle.truncate()
            handle.write(
                json.dumps(
                    {
                        "pid": os.getpid(),
                        "host": socket.gethostname(),
                        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                        "command": _command(),
                    }
                )
            )
            handle.flush()
            self._files.append(handle)
        return self

    def _lock(self, path: Path):
        """The locked, still-linked lock file at `path` (a file unlinked by a finishing run is not a lock)."""
        while True:
            handle = open(path, "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip()
                handle.close()
                self.release()
                raise FFPError(
                    f"another training run is writing {path.parent} ({_describe(holder)}); wait for it to "
                    f"finish, or give this run another --weights_dir/--log_dir"
                ) from None
            try:
                if os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
                    return handle
            except FileNotFoundError:
                pass
            handle.close()  # the holder removed it between our open and flock: try the new file

    def release(self) -> None:
        """Remove the lock files and drop the locks (a killed run's file stays, unlocked, and is reused)."""
        for handle in self._files:
            Path(handle.name).unlink(missing_ok=True)
            handle.close()  # closing drops the flock
        self._files = []


def _command() -> str:
    import sys

    return " ".join(["python", *sys.argv])[:300]


def _describe(holder: str) -> str:
    """'pid 123 on host, started …: python train.py …' from a lock file's JSON (or 'unknown holder')."""
    try:
        info = json.loads(holder)
        return f"pid {info['pid']} on {info['host']}, started {info['started']}: {info['command']}"
    except (ValueError, KeyError, TypeError):
        return "holder unknown"


def remove_stale_temp_files(weights_dir: Path, dataset: str) -> list[Path]:
    """Delete `.<dataset>_latest.pth.*.tmp` / `_best` files a hard kill during a save left behind.

    Only this dataset's checkpoint temp files (utils.files.atomic_write_bytes names them so), and only while this
    run holds the lock, so no live run can be writing them. Returns what was removed.
    """
    pattern = re.compile(rf"\.{re.escape(dataset)}_(latest|best)\.pth\.\w+\.tmp")
    removed = []
    for path in weights_dir.iterdir() if weights_dir.is_dir() else []:
        if pattern.fullmatch(path.name) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
