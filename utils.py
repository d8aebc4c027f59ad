"""Small helpers shared by every part of the project: the user-error type, seeding, devices, atomic writes."""

from __future__ import annotations

import dataclasses
import os
import random
import re
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from errors import FFPError

if TYPE_CHECKING:
    import torch

# torch is imported inside the functions that use it: detect.py with an ONNX model runs without torch installed,
# and it imports this module.


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so a run is repeatable."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str | None) -> torch.device:
    """'auto'/None -> cuda when available else cpu; otherwise the named device (FFPError if CUDA is asked for but
    absent)."""
    import torch

    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FFPError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
    return device


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


def repo_root() -> Path:
    """The folder holding this file (the repository root)."""
    return Path(__file__).resolve().parent


def cpu_name() -> str:
    """The CPU's model name and widest vector extension ('AMD EPYC 7B13, AVX-512'), from /proc/cpuinfo where it
    exists (timings differ several-fold between AVX2 and AVX-512 machines); the platform's name elsewhere."""
    import platform

    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    model = next(
        (line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
        platform.machine(),
    )
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else None
    return f"{model}, {vector}" if vector else model


def run_environment(
    device: torch.device | str, date_label: str, runtime: tuple[str, str] | None = None
) -> dict[str, str]:
    """What a result was computed with, as rows of a report header: {date_label: UTC date, 'git commit': this
    checkout's commit ('-dirty' when it has uncommitted changes; 'not a git checkout' outside one), 'torch' (or
    `runtime`'s name): its version, 'device': the device with the GPU's or CPU's name when known}.

    runtime: (name, version) of what ran the model when it is not torch (e.g. ('onnxruntime', '1.32.0'), with
    `device` a plain string): torch is then not imported."""
    import datetime
    import subprocess

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=repo_root(), capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "--short=12", "HEAD")
    if commit and git("status", "--porcelain", "--untracked-files=no"):
        commit += "-dirty"
    name: str | None
    if runtime is None:
        import torch

        runtime = ("torch", torch.__version__)
        name = torch.cuda.get_device_name(device) if torch.device(device).type == "cuda" else cpu_name()
    else:
        name = cpu_name() if str(device) == "cpu" else None
    return {
        date_label: datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "git commit": commit or "not a git checkout",
        runtime[0]: runtime[1],
        "device": f"{device} ({name})" if name else str(device),
    }


def shared_data_dir() -> Path:
    """`<repo>/../shared/data`, where the real datasets live on the project's machines (may not exist)."""
    return repo_root().parent / "shared" / "data"


def duration_text(seconds: float) -> str:
    """'1h02m', '3m05s', '42s': a duration in seconds as progress lines and reports show it."""
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else (f"{minutes}m{secs:02d}s" if minutes else f"{secs}s")


class Progress:
    """Progress that suits where output goes: a tqdm bar on a terminal, plain lines in a log file.

    When stdout is not a terminal (`nohup`, a cluster job, `> log 2>&1`) a bar prints nothing useful, so a
    line `desc: n/total (p%), rate unit/s, ETA …, k=v …` goes to stdout every `every` units, at most one per
    `min_interval_s` seconds, and at the end. `write` prints a line either way without breaking the bar.
    """

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str = "it",
        initial: int = 0,
        every: int = 1,
        min_interval_s: float = 10.0,
        enabled: bool = True,
    ):
        import sys
        import time

        from tqdm import tqdm

        self.total, self.desc, self.unit, self.n, self.every = total, desc, unit, initial, max(1, every)
        self.enabled, self.min_interval_s, self._clock = enabled, min_interval_s, time.monotonic
        self.postfix: dict = {}
        self._start, self._start_n = self._clock(), initial
        self._last_print, self._last_n = self._start, initial
        self.bar = (
            tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True)
            if enabled and sys.stdout.isatty()
            else None
        )

    def update(self, n: int = 1) -> None:
        """Count `n` more units done; maybe print a plain line."""
        self.n += n
        if self.bar is not None:
            self.bar.update(n)
        elif (
            self.enabled
            and self.n - self._last_n >= self.every
            and self._clock() - self._last_print >= self.min_interval_s
        ):
            self._line()

    def set_postfix(self, values: dict) -> None:
        """Values shown after the rate (e.g. losses); formatted by the caller."""
        self.postfix = dict(values)
        if self.bar is not None:
            self.bar.set_postfix(self.postfix)

    def write(self, text: str) -> None:
        """Print one line (above the bar on a terminal)."""
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)

    def _line(self) -> None:
        now = self._clock()
        rate = (self.n - self._start_n) / max(now - self._start, 1e-9)
        parts = [f"{self.desc}: {self.n}" + (f"/{self.total} ({100 * self.n / self.total:.0f}%)" if self.total else "")]
        parts.append(f"{rate:.2f} {self.unit}/s")
        if self.total and rate > 0:
            parts.append(f"ETA {duration_text((self.total - self.n) / rate)}")
        parts += [f"{k} {v}" for k, v in self.postfix.items()]
        print(", ".join(parts), flush=True)
        self._last_print, self._last_n = now, self.n

    def close(self) -> None:
        """Final line (plain mode) or close the bar."""
        if self.bar is not None:
            self.bar.close()
        elif self.enabled and self.n != self._last_n:
            self._line()


def cpu_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _others_running_now() -> int:
    """Runnable tasks of other processes right now: /proc/loadavg's running count minus this process's own running
    threads (/proc/self/task; at least this one, the reader); 1 where /proc cannot be read, so that the load
    average alone decides. The load average lags by a minute, so a job that just ended would otherwise still look
    like a neighbour."""
    try:
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return 1
    return max(0, running - _own_running_threads())


def _own_running_threads() -> int:
    """This process's threads in state R (running or runnable), at least 1 (the one asking)."""
    own = 0
    try:
        for task in os.scandir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{task.name}/stat") as f:
                    own += f.read().rsplit(")", 1)[1].split()[0] == "R"
            except (OSError, IndexError):
                continue
    except OSError:
        pass
    return max(1, own)


def auto_threads(samples: int = 5, interval_s: float = 0.05) -> int:
    """Torch threads for this process from what the other processes use now: the cores (this process's affinity)
    minus the median count of other runnable tasks over `samples` looks at /proc/loadavg, at least 1.

    Instantaneous, unlike the load average, which lags by a minute; sampled a few times because the count flickers.
    """
    cores = cpu_cores()
    seen = []
    for i in range(samples):
        if i:
            time.sleep(interval_s)
        seen.append(_others_running_now())
    others = sorted(seen)[len(seen) // 2]
    return max(1, cores - others)


def set_up_machine(cfg):
    """For a command that scores with a trained model (eval.py, detect.py): apply cfg.threads (printing
    `configure_threads`' warning when the cores look taken) and resolve cfg.device. Returns (cfg with the resolved
    device, so that data workers are chosen for the device that runs, that torch.device). FFPError as
    `resolve_device`."""
    warning = configure_threads(cfg.threads)
    if warning:
        print(warning, flush=True)
    device = resolve_device(cfg.device)
    return dataclasses.replace(cfg, device=str(device)), device


AUTO_RECHECK_S = 30.0  # --threads 0 (auto) looks at the other processes again this often
_auto_threads = {"on": False, "checked": 0.0}


def thread_count(threads: int, what: str = "torch") -> tuple[int, str | None]:
    """The thread count --threads asks for, and a line worth printing (or None); applies nothing.

    threads > 0: that many, with a warning when other processes seem to hold cores. threads 0 (auto, the default):
    OMP_NUM_THREADS when it is set (torchrun sets 1 per rank), else as many as the cores other processes leave free
    right now (`auto_threads`). Why: OpenMP threads wait for each other at every operation, so a 2-thread process
    beside another busy process waits for its descheduled thread (measured on the 2-core machine: up to 20-200×
    slower than alone, while 1 thread ran at its normal 1-thread speed; bench/thread_policy.py). `what` names the
    threads in the printed line ('torch', 'ONNX Runtime').
    """
    cores = cpu_cores()
    given = "--threads" if threads > 0 else "OMP_NUM_THREADS"
    threads = requested_threads(threads)
    if threads == 0:
        chosen = auto_threads()
        if chosen < cores:
            return chosen, (
                f"note: other processes keep {cores - chosen} of {cores} cores busy: running {chosen} {what} "
                f"thread(s){AUTO_RECHECK_NOTE.get(what, '')} (--threads N fixes the count)"
            )
        return chosen, None
    try:
        load = os.getloadavg()[0]
    except OSError:
        return threads, None
    free = max(0, int(cores - load + 0.5))
    if load >= 0.75 and threads > free and _others_running_now() > 0:
        return threads, busy_cores_line(
            load, cores, threads, f"{given}{' ' if given == '--threads' else '='}{threads}", what
        )
    return threads, None


def busy_cores_line(load: float, cores: int, threads: int, given: str, what: str = "torch") -> str:
    """The line for a fixed thread count (`given`, e.g. '--threads 2') on cores other processes use: with several
    threads, a smaller count to pass (threads that wait for each other: measured 20-200× slower than alone); with
    one thread, which waits for no other, only the load (fewer threads cannot help: it will be slower while the
    cores are shared)."""
    busy = min(cores, round(load))
    free = max(1, int(cores - load + 0.5))
    if threads > 1:
        return (
            f"warning: the load average is {load:.1f} on {cores} cores, so other processes use about {busy} of "
            f"them, and this run's {threads} {what} threads ({given}) will wait for each other (measured 20-200× "
            f"slower than alone); pass --threads {min(free, threads - 1)} (or 0: auto) or wait for the cores to "
            "free up"
        )
    return (
        f"note: the load average is {load:.1f} on {cores} cores, so other processes use about {busy} of them; "
        f"this run's single {what} thread ({given}) waits for no other thread, but shares a core with them and "
        "runs slower than alone until the cores free up (no other --threads value would help)"
    )


AUTO_RECHECK_NOTE = {"torch": f", re-checked every {AUTO_RECHECK_S:g} s"}


def requested_threads(threads: int) -> int:
    """--threads with OMP_NUM_THREADS applied: 0 (auto) becomes OMP_NUM_THREADS when that is set (by the user, or by
    torchrun: 1 per rank), which is respected; still 0 means auto."""
    if threads == 0 and os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return int(os.environ["OMP_NUM_THREADS"])
    return threads


def configure_threads(threads: int) -> str | None:
    """Apply --threads to torch (`thread_count`) and return a line worth printing, or None. With threads 0 (auto,
    without OMP_NUM_THREADS) the count is re-checked every AUTO_RECHECK_S by `recheck_threads`."""
    import torch

    chosen, line = thread_count(threads)
    _auto_threads.update(on=requested_threads(threads) == 0, checked=time.monotonic())
    torch.set_num_threads(chosen)
    return line


def recheck_threads() -> str | None:
    """With --threads 0 (auto), at most every AUTO_RECHECK_S: set the torch threads to what the other processes
    leave free now; returns a line saying so when the count changed. Cheap otherwise (one clock read): call it
    between steps or batches."""
    now = time.monotonic()
    if not _auto_threads["on"] or now - _auto_threads["checked"] < AUTO_RECHECK_S:
        return None
    _auto_threads["checked"] = now
    import torch

    before, chosen = torch.get_num_threads(), auto_threads(samples=3, interval_s=0.02)
    if chosen == before:
        return None
    torch.set_num_threads(chosen)
    return f"note: torch threads {before} -> {chosen} (other processes now keep {cpu_cores() - chosen} core(s) busy)"
