"""DataLoader workers: how many (--num_workers), and how they stay out of the way of Ctrl-C and SIGTERM."""

from __future__ import annotations

import os
import signal

import torch

from utils.devices import resolve_device
from utils.threads import cpu_cores

AUTO_WORKERS = 2  # what --num_workers -1 asks for when spare cores allow (GPU runs, machines with many cores)


def data_workers(requested: int, device: str | None) -> int:
    """DataLoader workers for --num_workers `requested` (an explicit count is used as given).

    -1 (auto) means AUTO_WORKERS, but when the networks run on the CPU no more than the cores torch's compute
    threads leave free: a worker on a core the OpenMP threads need stalls every parallel region (64×96
    evaluation on 2 cores: 0.71 s per video with 2 workers, 0.42 s with none; docs/performance.md).
    """
    if requested >= 0:
        return requested
    if resolve_device(device).type != "cpu":
        return AUTO_WORKERS
    cores = cpu_cores()
    return max(0, min(AUTO_WORKERS, cores - torch.get_num_threads()))


def leave_interrupts_to_main(_worker_id: int) -> None:
    """DataLoader worker start: leave the terminal's process group and ignore SIGINT, so neither Ctrl-C nor a
    SIGTERM sent to the whole group (`kill -- -PGID`, a job scheduler) reaches the workers: the main process stops
    on its own terms (training saves, detect.py --mode stream keeps what it scored) instead of dying on 'DataLoader
    worker … killed by signal'. The workers still end with their loader (and with the main process: torch's
    watchdog). SIGTERM keeps torch's own worker handler, installed before this runs."""
    try:
        os.setpgid(0, 0)
    except OSError:
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)
