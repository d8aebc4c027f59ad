"""Training speed: iterations/s and peak memory of the project's full training step versus a naive step.

    python bench/train_speed.py                                 # both sizes on CPU (a few minutes on 2 cores)
    python bench/train_speed.py --sizes paper --device cuda --amp

Both run the whole FFP step (training.step.train_step: G update with intensity, gradient, classical-flow
and adversarial losses, then D update) with the same config, initial weights and window order:
- project: train.py's path: TrainWindows (decoded-frame RAM cache) through train_loader (DataLoader
  workers, persistent, prefetch), G and D in the --channels_last default, a device-side non-finite flag
  and no per-step host sync;
- naive (written here): no DataLoader, each step decodes its windows' JPEGs in the main process
  (cv2.imread + resize), fp32 NCHW networks, `.item()` of every loss every step.
Setup (building the frame cache, starting workers) is reported apart from the per-step rate. Peak memory:
each variant runs alone in a fresh process for its warm-up and one repetition (CPU: peak resident set of
the main process, ru_maxrss; CUDA: max_memory_allocated); baseline_peak_mb is such a process that only
imported everything (subtract it for what a variant itself needs). Prints one `key: value` line per size, writes
bench/train_speed.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import subprocess
import sys
import time

import numpy as np
import torch
from common import (
    base_parser,
    bench_data,
    machine_info,
    median,
    naive_read,
    parse_sizes,
    peak_memory_mb,
    size_config,
    size_fields,
    summary_line,
    time_reps,
    write_json,
)

from dataset import EpochShuffleSampler, TrainWindows, train_loader
from training.distributed import DistInfo
from training.nets import accelerate, build_nets
from training.step import make_precision, train_step

STEPS = {"small": 10, "paper": 2}  # training steps per timed repetition
WARMUP_STEPS = 2


class ProjectTrainer:
    """train.py's data path and step (no logging): one `steps(n)` call = n training iterations."""

    def __init__(self, cfg, files, device: torch.device):
        started = time.perf_counter()
        self.cfg, self.device = cfg, device
        self.windows = TrainWindows(files.train, cfg)
        self.nets = accelerate(build_nets(cfg, device), cfg, device, DistInfo(), make_precision(cfg, device))
        self.batches = iter(train_loader(self.windows, cfg, 0))
        self.bad = torch.zeros((), dtype=torch.bool, device=device)
        self.steps(WARMUP_STEPS)
        self.setup_s = time.perf_counter() - started

    def steps(self, n: int) -> None:
        for clip in itertools.islice(self.batches, n):
            parts = train_step(self.nets, self.cfg, clip, self.device)
            self.bad |= ~torch.isfinite(parts["g_total"])
        assert not bool(self.bad), "non-finite loss"  # one host sync per repetition, as train.py per log step


class NaiveTrainer:
    """The textbook loop: decode each step's windows from JPEG in the main process, fp32 NCHW, .item() each step."""

    def __init__(self, cfg, files, device: torch.device):
        started = time.perf_counter()
        cfg = dataclasses.replace(cfg, channels_last="off", cache_frames=False)
        self.cfg, self.device = cfg, device
        windows = TrainWindows(files.train, cfg)  # only for its windows and frame paths (no decoding)
        self.index, self.window = windows.index, windows.window
        self.paths = [reader.files for reader in windows.store.readers]  # frame folders (not cached)
        self.order = iter(EpochShuffleSampler(len(windows), cfg.seed))  # the project's window order
        self.nets = build_nets(cfg, device)
        self.steps(WARMUP_STEPS)
        self.setup_s = time.perf_counter() - started

    def clip(self) -> torch.Tensor:
        """B×(T+1)×3×H×W uint8 of the next batch of windows, decoded now."""
        windows = [self.index[i] for i in itertools.islice(self.order, self.cfg.batch_size)]
        frames = np.stack(
            [
                [naive_read(self.paths[v][s + k], self.cfg.height, self.cfg.width) for k in range(self.window)]
                for v, s in windows
            ]
        )
        return torch.from_numpy(frames).permute(0, 1, 4, 2, 3)

    def steps(self, n: int) -> None:
        for _ in range(n):
            parts = train_step(self.nets, self.cfg, self.clip(), self.device)
            losses = {k: v.item() for k, v in parts.items()}
            assert np.isfinite(losses["g_total"]), "non-finite loss"


TRAINERS = {"project": ProjectTrainer, "naive": NaiveTrainer}


def fresh_process_peak_mb(size: str, name: str, args) -> float:
    """Peak memory of trainer `name` at `size`, run alone in a new process of this script (--peak_of)."""
    flags = [
        "--device",
        args.device,
        *(["--amp"] if args.amp else []),
        *(["--num_workers", str(args.num_workers)] if args.num_workers is not None else []),
        *(["--data_root", args.data_root] if args.data_root else []),
    ]
    done = subprocess.run(
        [sys.executable, __file__, "--sizes", size, "--peak_of", name, *flags],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_mb"]


def bench_size(size: str, files, root, args, device: torch.device) -> dict:
    """Both trainers at `size`: peak memory (fresh processes), setup, then alternating timed repetitions."""
    cfg = size_config(size, files, root, args, amp=args.amp)
    memory = {name: fresh_process_peak_mb(size, name, args) for name in ("baseline", *TRAINERS)}
    trainers = {}
    for name, kind in TRAINERS.items():
        torch.manual_seed(cfg.seed)  # identical initial weights
        trainers[name] = kind(cfg, files, device)
    n, times = STEPS[size], {"project": [], "naive": []}
    for _ in range(args.reps):  # alternate, so a change in machine load hits both variants alike
        for name in ("project", "naive"):
            times[name] += time_reps(lambda: trainers[name].steps(n), 1, device)
    project_its, naive_its = n / median(times["project"]), n / median(times["naive"])
    return {
        **size_fields(cfg, args),
        "batch": cfg.batch_size,
        "channels_last": trainers["project"].nets.memory_format == torch.channels_last,
        "project_its": project_its,
        "naive_its": naive_its,
        "speedup_vs_naive": project_its / naive_its,
        "project_peak_mb": memory["project"],
        "naive_peak_mb": memory["naive"],
        "baseline_peak_mb": memory["baseline"],
        "project_setup_s": trainers["project"].setup_s,
        "naive_setup_s": trainers["naive"].setup_s,
        "project_rep_s": times["project"],
        "naive_rep_s": times["naive"],
    }


def report_peak(name: str, size: str, files, root, args, device: torch.device) -> None:
    """--peak_of: warm up and run one repetition of one trainer, print {'peak_mb': ...} as the last line.

    'baseline' builds nothing: the memory of the interpreter with torch, OpenCV and the project imported.
    """
    if name != "baseline":
        trainer = TRAINERS[name](size_config(size, files, root, args, amp=args.amp), files, device)
        trainer.steps(STEPS[size])
    print(json.dumps({"peak_mb": peak_memory_mb(device)}))


def main(argv: list[str] | None = None) -> dict | None:
    parser = base_parser(__doc__)
    parser.add_argument("--peak_of", choices=["baseline", *TRAINERS], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    files, root = bench_data(args.data_root)
    if args.peak_of:
        return report_peak(args.peak_of, parse_sizes(args.sizes)[0], files, root, args, device)
    results = {"machine": machine_info(device), "data": f"{files.name} training videos", "amp": args.amp, "sizes": {}}
    for size in parse_sizes(args.sizes):
        values = bench_size(size, files, root, args, device)
        results["sizes"][size] = values
        print(summary_line("train_speed", values), flush=True)
    print(f"wrote {write_json(__file__, results)}")
    return results


if __name__ == "__main__":
    main()
