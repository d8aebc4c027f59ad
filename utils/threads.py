"""How many torch threads a process runs: --threads, OMP_NUM_THREADS, or (auto) the cores other processes leave
free now, re-checked while it runs."""

from __future__ import annotations

import os
import time


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
