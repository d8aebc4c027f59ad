"""DistributedDataParallel training on CPU: 2 gloo processes started by torchrun on the tiny synthetic data.

Equivalence: rank r takes the r-th half of each epoch's permutation (EpochShuffleSampler), b windows per
step. Every loss is a mean over its batch, and DDP averages the ranks' gradients, so the mean over ranks
of per-rank means over b windows is the mean over all 2b windows: k DDP steps must equal k single-process
steps whose batch is rank 0's b windows followed by rank 1's b windows. The reference is built from those
window indices directly (a single-process train.py would draw a different permutation split).
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import relative_update_error

import train as train_script
from config_flags import config_from_namespace
from dataset import EpochShuffleSampler, TrainWindows, prepare_dataset
from training.step import train_step
from utils.devices import seed_everything

ROOT = Path(__file__).resolve().parents[1]
# Every test here uses ddp_runs: two torchrun launches of 2 processes each, ~30 s on the 2-core machine.
pytestmark = pytest.mark.slow
PER_RANK_BATCH = 2
# Tolerance on ‖w_ddp − w_ref‖ / ‖w_ref − w_init‖ per network: the relative error of the training update.
# The two runs differ only in float summation order (per-rank convolutions over b windows with 1 thread
# each plus a gradient all-reduce, versus one batch of 2b with 2 threads). Adam amplifies such noise in
# the few weights whose gradient is near its eps, so G's largest single-weight difference after 3 steps is
# ~4e-5 (as between 1 and 2 threads in one process), but the relative update errors are ~2e-3 (G) and
# ~3e-6 (D); training on other windows, or ranks that never synchronise G or D, gives 0.3 to 0.7.
REL_TOL = 2e-2


def train_args(root: Path, out: Path, iters: int, extra: tuple[str, ...] = ()) -> list[str]:
    return [
        "--dataset",
        "synthetic",
        "--preset",
        "tiny",
        "--data_root",
        str(root),
        "--flownet",
        "classical",
        "--batch_size",
        str(PER_RANK_BATCH),
        "--weights_dir",
        str(out / "w"),
        "--log_dir",
        str(out / "runs"),
        "--iters",
        str(iters),
        "--save_interval",
        "3",
        "--val_interval",
        "100",
        *extra,
    ]


def torchrun(args: list[str]) -> None:
    """`torchrun --standalone --nproc_per_node=2 train.py ARGS` (a free rendezvous port, gloo on CPU)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "train.py", *args]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def single_process_reference(args: list[str], steps: int) -> dict[str, tuple[dict, dict]]:
    """{'net_g'/'net_d': (initial, final) weights} after `steps` single-process steps on both ranks' windows
    concatenated (batch 2b)."""
    cfg = config_from_namespace(train_script.parse_args(args))
    seed_everything(cfg.seed)  # as train.py: same seed, same construction order -> same initial weights
    windows = TrainWindows(prepare_dataset(cfg).train, cfg)
    nets = train_script.build_nets(cfg, torch.device("cpu"))
    initial = {"net_g": weights(nets.g), "net_d": weights(nets.d)}
    per_rank = [
        list(itertools.islice(EpochShuffleSampler(len(windows), cfg.seed, 0, r, 2), steps * PER_RANK_BATCH))
        for r in range(2)
    ]
    for s in range(steps):
        batch = [i for rank in per_rank for i in rank[s * PER_RANK_BATCH : (s + 1) * PER_RANK_BATCH]]
        train_step(nets, cfg, torch.stack([windows[i] for i in batch]), torch.device("cpu"))
    return {"net_g": (initial["net_g"], weights(nets.g)), "net_d": (initial["net_d"], weights(nets.d))}


def weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def assert_same_update(checkpoint: dict, reference: dict[str, tuple[dict, dict]]) -> None:
    """The DDP run's G and D weights match the reference's within REL_TOL of the reference's total update."""
    for net, (initial, expected) in reference.items():
        relative = relative_update_error(initial, expected, checkpoint[net])
        assert relative <= REL_TOL, f"DDP {net} update differs by {relative:.3g}"


@pytest.fixture(scope="module")
def ddp_runs(synthetic_root, tmp_path_factory):
    """A 3-step DDP run, then a DDP resume of its checkpoint to step 6: {'first': ckpt path, 'resumed': ...}."""
    out = tmp_path_factory.mktemp("ddp")
    torchrun(train_args(synthetic_root, out, 3))
    first = out / "w" / "synthetic_latest.pth"
    copy = out / "step3.pth"
    copy.write_bytes(first.read_bytes())
    torchrun(train_args(synthetic_root, out, 6, ("--resume", str(copy))))
    return {"first": copy, "resumed": out / "w" / "synthetic_latest.pth", "root": synthetic_root}


def test_ddp_matches_single_process_on_the_same_windows(ddp_runs):
    state = load(ddp_runs["first"])
    assert state["step"] == 3
    assert_same_update(state, single_process_reference(train_args(ddp_runs["root"], Path("unused"), 3), 3))


def test_ddp_resume_continues_the_same_run(ddp_runs):
    state = load(ddp_runs["resumed"])
    assert state["step"] == 6
    # Resumed ranks must pick up their own window streams at step 3, so the reference for 6 steps matches.
    assert_same_update(state, single_process_reference(train_args(ddp_runs["root"], Path("unused"), 6), 6))


def test_ddp_checkpoint_resumes_in_a_single_process(ddp_runs, tmp_path):
    state = load(ddp_runs["first"])
    assert not any(k.startswith(("module.", "_orig_mod.")) for k in state["net_g"])  # unwrapped weights
    args = train_args(ddp_runs["root"], tmp_path, 4, ("--resume", str(ddp_runs["first"])))
    assert train_script.main(args) == 0
    assert load(tmp_path / "w" / "synthetic_latest.pth")["step"] == 4
