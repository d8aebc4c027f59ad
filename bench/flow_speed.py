"""Time the flow estimators on CPU per 256×256 frame pair; write bench/flow_speed.json.

Usage: python bench/flow_speed.py [--reps 20] [--size 256] [--batch 1] [--threads N]
Forward = one no-grad call (the real-frame flow of the loss); forward+backward = a call whose output is
back-propagated to frame_b (the predicted-frame flow of the loss). Times are per pair (divided by the
batch), after warm-up: the median is reported, the minimum is kept in the JSON because on a shared
machine other jobs inflate the median (torch's spinning worker threads make this worse with 2 threads).
FlowNet2-SD has random weights: its speed does not depend on them.
The full-size generator's forward+backward on the same input is timed too, for scale.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runnable as `python bench/flow_speed.py` from anywhere
    sys.path.insert(0, str(ROOT))

from flownet import ClassicalFlow, FlowNet2SD  # noqa: E402
from flownet.estimator import FlowNet2SDFlow, freeze  # noqa: E402
from model import Generator  # noqa: E402
from utils.files import atomic_write_text  # noqa: E402

WARMUP = 3


def timings_ms(fn: Callable[[], None], reps: int) -> list[float]:
    """Wall times of fn() in milliseconds over `reps` calls, after WARMUP untimed calls."""
    times = []
    for i in range(WARMUP + reps):
        start = time.perf_counter()
        fn()
        if i >= WARMUP:
            times.append((time.perf_counter() - start) * 1000)
    return times


def summary(times: list[float], batch: int) -> dict[str, float]:
    """Median (the reported number) and minimum (robust to other jobs sharing the CPU), per pair."""
    return {"median_ms": statistics.median(times) / batch, "min_ms": min(times) / batch}


def time_estimator(
    estimator: torch.nn.Module, batch: int, size: tuple[int, int], reps: int
) -> dict[str, dict[str, float]]:
    """{'forward': ..., 'forward_backward': ...} timings per pair for B×3×H×W frames in [-1, 1], size = (H, W)."""
    frame_a = torch.rand(batch, 3, *size) * 2 - 1
    frame_b = (torch.rand(batch, 3, *size) * 2 - 1).requires_grad_(True)

    def forward():
        with torch.no_grad():
            estimator(frame_a, frame_b)

    def forward_backward():
        estimator(frame_a, frame_b).abs().mean().backward()

    return {
        "forward": summary(timings_ms(forward, reps), batch),
        "forward_backward": summary(timings_ms(forward_backward, reps), batch),
    }


def time_generator(batch: int, size: int, reps: int) -> dict[str, float]:
    """Forward+backward of the paper-size generator on B×12×size×size, per sample (for scale)."""
    gen = Generator()
    frames = torch.rand(batch, 12, size, size) * 2 - 1

    def step():
        gen.zero_grad(set_to_none=True)
        gen(frames).square().mean().backward()

    return summary(timings_ms(step, max(3, reps // 4)), batch)


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, print one `name: value` line per estimator, write bench/flow_speed.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "flow_speed.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    estimators = {
        "classical": freeze(ClassicalFlow(), "cpu"),
        "flownet2sd": freeze(FlowNet2SDFlow(FlowNet2SD()), "cpu"),
    }
    results = {
        "size": args.size,
        "batch": args.batch,
        "threads": args.threads,
        "reps": args.reps,
        "device": "cpu",
        "torch": torch.__version__,
        "estimators": {},
    }
    for name, estimator in estimators.items():
        timing = time_estimator(estimator, args.batch, (args.size, args.size), args.reps)
        results["estimators"][name] = timing
        print(
            f"{name}: forward {timing['forward']['median_ms']:.1f} ms, forward+backward "
            f"{timing['forward_backward']['median_ms']:.1f} ms per {args.size}x{args.size} pair (median)"
        )
    results["generator_forward_backward"] = time_generator(args.batch, args.size, args.reps)
    print(
        f"generator (reference): forward+backward {results['generator_forward_backward']['median_ms']:.1f} ms "
        f"per sample (median)"
    )
    atomic_write_text(args.out, json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
