"""Files and folders that are never seen half-written: atomic writes, staged folders, permissions, writability."""

from __future__ import annotations

import os
import re
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from errors import FFPError


def current_umask() -> int:
    """The process's file-mode creation mask (e.g. 0o022).

    Read from /proc/self/status (Linux ≥ 4.7) so that it is never changed, not even for a moment that another
    thread creating a file could observe; elsewhere set and restored at once (the only portable way).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def shared_mode(path: str | os.PathLike, directory: bool = False) -> None:
    """Give a file (0666) or folder (0777) made by tempfile (0600/0700) the umask's permissions, as open() and
    mkdir() would have, so results and checkpoints renamed into place are readable by colleagues."""
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` so a crash never leaves a half-written file: temp file, fsync, os.replace.

    The file gets the permissions a plain open() would give (0666 minus the umask, e.g. 0644), not the
    0600 of the temporary file, so colleagues on a shared machine can read results and checkpoints.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~current_umask())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:  # e.g. ENOSPC from write(): name the target
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise


def not_writable_reason(folder: Path, exc: OSError) -> str:
    """Why `folder` could not be created or written: a file standing where it or a parent folder should be
    ('x is a file, not a folder'), else the OS's reason."""
    blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
    return f"{blocker} is a file, not a folder" if blocker is not None else str(exc.strerror or exc)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM are recorded while inside and handed to their own handlers on leaving, so that the
    clean-up inside cannot be cut short half-way. (Masking would not do: torch's worker threads would take a
    process-directed signal and the main thread would still run the handler mid-clean-up.) Outside the main
    thread, where handlers cannot be installed, it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    saved: dict[int, Any] = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in saved:
        signal.signal(s, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
        if caught:
            handler = saved[caught[0]]
            if callable(handler):
                handler(caught[0], None)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(caught[0])


# A folder is built in a hidden sibling `.<name>.tmp-<pid>-<random>` and renamed into place when complete
# (results, the synthetic dataset, extracted frames), so a crash never leaves a half-written visible folder; the
# pid tells the temp folder of a crashed process (removed by `remove_dead_staging`) from one being built now.
_STAGING = re.compile(r"\..+\.tmp-(\d+)-\w+")


def staging_folder(parent: Path, name: str) -> Path:
    """A new, empty hidden folder in `parent` (created, with the umask's permissions) to build `name` in. OSError
    as tempfile.mkdtemp (an unwritable or missing `parent`)."""
    staged = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-{os.getpid()}-", dir=parent))
    shared_mode(staged, directory=True)
    return staged


def install_folder(staged: Path, dest: Path) -> None:
    """Rename the finished `staged` folder to `dest`. An existing `dest` is swapped out (moved into a hidden
    sibling, `staged` renamed in, the old one deleted), so there is never a half-deleted one; signals wait until
    the swap is done, so it is never left with no visible folder. OSError as os.replace."""
    with signals_deferred():
        old = None
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
            os.replace(dest, old / dest.name)
        os.replace(staged, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    """Whether process `pid` exists (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_dead_staging(parent: Path) -> None:
    """Delete the staging folders in `parent` whose process is gone (a crash or a kill -9 left them)."""
    for folder in parent.iterdir() if parent.is_dir() else []:
        match = _STAGING.fullmatch(folder.name)
        if match and folder.is_dir() and not _pid_alive(int(match.group(1))):
            shutil.rmtree(folder, ignore_errors=True)


def check_writable(folder: str | os.PathLike, flag: str) -> None:
    """FFPError naming `flag` and `folder` unless files can be created in `folder` (created if missing).

    Call before long work (training, scoring) so an unwritable output folder fails at once, not at the end.
    Probes with a real file, so it is meaningful as root too (where permission bits do not stop writes).
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write_test.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise FFPError(f"{flag} {folder} is not writable: {not_writable_reason(folder, exc)}") from None


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Text version of `atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))
