"""Multi-process training under torchrun: process group set-up and teardown, rank helpers, DDP wrapping.

    torchrun --nproc_per_node=N train.py ...                        # N GPUs (NCCL) or N CPU processes (gloo)
    torchrun --nnodes=M --node_rank=i --rdzv_endpoint=host:port ...  # multi-node: torchrun's own flags

Everything comes from the environment torchrun sets (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR/PORT):
nothing here is node-specific. With WORLD_SIZE unset or 1 every helper is a no-op, so plain
`python train.py` runs exactly as a single process.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from errors import FFPError
from utils.devices import resolve_device

# Ranks wait at a barrier while rank 0 validates on the whole test set; the default 10-minute NCCL timeout
# could abort a long validation (e.g. ShanghaiTech on a slow GPU).
GROUP_TIMEOUT = timedelta(minutes=60)


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job: global rank, rank on its node, number of processes."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        """True when several processes train together (DDP)."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that logs, validates, writes tensorboard and saves checkpoints."""
        return self.rank == 0


def _env_int(name: str) -> int:
    """An integer torchrun variable; FFPError when a multi-process launch lacks it."""
    value = os.environ.get(name)
    if value is None or not value.isdigit():
        raise FFPError(
            f"WORLD_SIZE={os.environ.get('WORLD_SIZE')} but ${name} is {value!r}: launch multi-process "
            f"training with torchrun (it sets RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT)"
        )
    return int(value)


def init_distributed(device_name: str | None) -> tuple[DistInfo, torch.device]:
    """Join the process group when torchrun started several processes; return (DistInfo, this rank's device).

    CUDA: backend NCCL, device cuda:LOCAL_RANK (one GPU per process, whatever --device names). CPU: gloo.
    """
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    device = resolve_device(device_name)
    if world <= 1:
        return DistInfo(), device
    info = DistInfo(_env_int("RANK"), _env_int("LOCAL_RANK"), world)
    if device.type == "cuda":
        if info.local_rank >= torch.cuda.device_count():
            raise FFPError(
                f"torchrun --nproc_per_node asks for local rank {info.local_rank} but this node has "
                f"{torch.cuda.device_count()} GPU(s): use at most one process per GPU"
            )
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device, timeout=GROUP_TIMEOUT)
    else:
        dist.init_process_group("gloo", timeout=GROUP_TIMEOUT)
    return info, device


def shutdown_distributed() -> None:
    """Leave the process group (a no-op when none was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    """Wait until every rank reaches this point (a no-op for one process)."""
    if info.enabled:
        dist.barrier()


@contextlib.contextmanager
def main_first(info: DistInfo) -> Iterator[None]:
    """Rank 0 runs the block first (e.g. generating or downloading data), the others after it finished."""
    if not info.is_main:
        barrier(info)
    yield
    if info.is_main:
        barrier(info)


def any_rank(flag: torch.Tensor, info: DistInfo) -> bool:
    """True when the boolean scalar `flag` is true on any rank: one host sync (and one all-reduce under DDP)."""
    value = flag.to(torch.int32)
    if info.enabled:
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value)


def mean_over_ranks(values: dict[str, torch.Tensor], info: DistInfo) -> dict[str, float]:
    """{name: scalar tensor} -> {name: float} averaged over ranks (one all-reduce; for logging steps only)."""
    names = sorted(values)
    stacked = torch.stack([values[k].float() for k in names])
    if info.enabled:
        dist.all_reduce(stacked)
        stacked /= info.world_size
    return dict(zip(names, stacked.tolist()))


def wrap_ddp(module: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel around `module` (which already lives on `device`).

    find_unused_parameters stays False: every parameter of G gets a gradient in G's update and every
    parameter of D in D's update (G's adversarial term calls the unwrapped D, see training/step.py), so
    the costly unused-parameter graph walk is never needed. G and D hold no buffers, so DDP's buffer
    broadcast has nothing to do.
    """
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids)


def stop_agreed(signum: int, step: int, log_interval: int, info: DistInfo, device: torch.device) -> bool:
    """Whether a SIGINT/SIGTERM (`signum`, 0 = none) asks to stop before `step`.

    One process: at once. Under DDP the ranks must stop at the same step (a rank leaving early would hang
    the others in the next all-reduce), so they agree by an all-reduce, only every `log_interval` steps to
    keep the loop free of per-step host syncs.
    """
    if not info.enabled:
        return bool(signum)
    if step % log_interval:
        return False
    return any_rank(torch.tensor(signum, device=device), info)
