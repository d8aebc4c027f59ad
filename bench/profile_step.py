"""Where one training step's time goes: a torch.profiler table of train.py's own step, phase by phase.

    python bench/profile_step.py                       # the --preset cpu step on real Ped2 (2 threads)
    python bench/profile_step.py --amp                  # the same under bf16 autocast
    python bench/profile_step.py --set height=128 --set g_widths=32,64,128,256

The phases are the `record_function` ranges inside training.step.train_step and training.losses.flow_loss
(G forward, the two flow-estimator calls, the losses, D for G's adversarial term, G backward — which runs
back through the flow estimator, D and G —, G's Adam step, D's two forwards, backward and Adam), plus the
DataLoader's `next()` (data). Times are the profiler's CPU totals per step (each range includes the ops it
calls; profiling adds a little overhead, so the wall time per step without the profiler is printed too).
The three networks are also timed alone (forward + input-gradient backward) to split G's backward.
With --cache_flow on (auto: RIFE's IFNet on the CPU) the profiled clips' real-frame flows are cached first, as a
run holds them from its second epoch on; their first-visit cost per pair is printed.
Writes bench/profile_step.json; prints a Markdown table for docs/performance.md.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import bench_data, machine_info, write_json  # noqa: F401  (sets sys.path)
from torch.profiler import ProfilerActivity, profile

from config import build_config
from dataset import TrainWindows, train_loader
from training.distributed import DistInfo
from training.nets import accelerate, build_nets
from training.step import make_precision, split_clip, train_step

PHASES = (
    "data",
    "G forward",
    "intensity + gradient losses",
    "flow of the prediction",
    "flow of the real frame",
    "D forward (G's adversarial term)",
    "G backward",
    "G Adam",
    "D forwards (real, generated)",
    "D backward",
    "D Adam",
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu", help="config preset of the step (default cpu)")
    parser.add_argument("--set", action="append", default=[], help="config override key=value (repeatable)")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast")
    parser.add_argument("--steps", type=int, default=8, help="profiled steps (after 3 warm-up steps)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument("--data_root", default=None, help="folder holding ped2/ (default ../shared/data)")
    return parser.parse_args()


def overrides(items: list[str]) -> dict:
    """--set k=v pairs -> typed config overrides (ints, floats, comma tuples, booleans)."""
    result = {}
    for item in items:
        key, value = item.split("=", 1)
        if "," in value:
            result[key] = tuple(int(v) for v in value.split(","))
        elif value.lower() in ("true", "false"):
            result[key] = value.lower() == "true"
        else:
            try:
                result[key] = int(value)
            except ValueError:
                try:
                    result[key] = float(value)
                except ValueError:
                    result[key] = value
    return result


def time_alone(fn, reps: int = 5) -> float:
    """Median seconds of fn() after one warm-up call."""
    fn()
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def components(nets, cfg, clip, device) -> dict[str, float]:
    """Each network alone: forward + backward to its input (and weights for G), ms."""
    inputs, target = split_clip(clip, device, nets.memory_format)
    last = inputs[:, -3:]
    with nets.precision.autocast():
        pred = nets.g(inputs).float().detach()

    def g_step():
        with nets.precision.autocast():
            out = nets.g(inputs).float()
        out.mean().backward()

    def flow_grad():
        p = pred.clone().requires_grad_(True)
        nets.flow(last, p).abs().mean().backward()

    def flow_real():
        with torch.no_grad():
            nets.flow(last, target)

    def d_grad():
        p = pred.clone().requires_grad_(True)
        with nets.precision.autocast():
            out = nets.d(p).float()
        out.mean().backward()

    result = {"G forward + backward": g_step, "D forward + backward to its input": d_grad}
    if nets.flow is not None:
        result = {
            **result,
            "flow of the prediction, forward + backward": flow_grad,
            "flow of the real frame, forward (no graph)": flow_real,
        }
    return {name: 1000 * time_alone(fn) for name, fn in result.items()}


def fill_flow_cache(nets, clips: list, device) -> float | None:
    """Put the real frames' flow of every clip in the step's cache (--cache_flow), as a run holds them from its
    second epoch on; ms per frame pair at its first visit, None without a cache."""
    if nets.real_flow is None:
        return None
    inputs, target = split_clip(clips[0], device, nets.memory_format)
    nets.real_flow(inputs[:, -3:], target)  # untimed: the first call also sets up the estimator's kernels
    started, pairs = time.perf_counter(), 0
    for clip in clips[1:]:
        inputs, target = split_clip(clip, device, nets.memory_format)
        nets.real_flow(inputs[:, -3:], target)
        pairs += target.shape[0]
    return 1000 * (time.perf_counter() - started) / pairs


def step_name(cfg) -> str:
    """The profiled configuration in one line."""
    return (
        f"{cfg.height}×{cfg.width}, G {'-'.join(map(str, cfg.g_widths))}, D {'-'.join(map(str, cfg.d_widths))}, "
        f"batch {cfg.batch_size}, flow {cfg.flownet}, {'bf16' if cfg.amp else 'fp32'}"
    )


def print_tables(totals: dict[str, float], alone: dict[str, float]) -> None:
    """The Markdown tables of the phases (ms per step, share of the profiled sum) and of the networks alone."""
    profiled = sum(totals.values())
    print("\n| phase | ms/step | share |\n|---|---|---|")
    for phase in PHASES:
        if phase in totals:
            print(f"| {phase} | {totals[phase]:.1f} | {100 * totals[phase] / profiled:.0f} % |")
    print(f"| **sum of phases (profiled)** | {profiled:.1f} | 100 % |\n")
    print("| alone | ms |\n|---|---|")
    for name, ms in alone.items():
        print(f"| {name} | {ms:.1f} |")


def main() -> int:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    files, root = bench_data(args.data_root)
    cfg = build_config(files.name, args.preset, {"data_root": str(root), "amp": args.amp, **overrides(args.set)})
    windows = TrainWindows(files.train, cfg)
    nets = accelerate(build_nets(cfg, device, len(windows)), cfg, device, DistInfo(), make_precision(cfg, device))
    loader = iter(train_loader(windows, cfg, 0))
    data_s = []

    def next_clip():
        started = time.perf_counter()
        clip = next(loader)
        data_s.append(time.perf_counter() - started)
        return clip

    clips = [next_clip() for _ in range(3 + 2 * args.steps)]
    first_visit_ms = fill_flow_cache(nets, clips, device)  # the steady state: every real frame's flow cached

    for clip in clips[:3]:
        train_step(nets, cfg, clip, device)
    started = time.perf_counter()
    for clip in clips[3 : 3 + args.steps]:
        train_step(nets, cfg, clip, device)
    wall_ms = 1000 * (time.perf_counter() - started) / args.steps
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for clip in clips[3 + args.steps :]:
            train_step(nets, cfg, clip, device)
    totals = {e.key: e.cpu_time_total / 1000 / args.steps for e in prof.key_averages() if e.key in PHASES}
    totals["data"] = 1000 * statistics.mean(data_s)
    alone = components(nets, cfg, clip, device)
    print(f"step: {step_name(cfg)}; {torch.get_num_threads()} threads; wall {wall_ms:.0f} ms/step without the profiler")
    print(f"memory format: {nets.memory_format_note}")
    if first_visit_ms is not None:
        print(f"real frames' flow cached (--cache_flow): {first_visit_ms:.0f} ms per pair at its first visit")
    print_tables(totals, alone)
    write_json(
        __file__,
        {
            "config": cfg.to_dict(),
            "wall_ms_per_step": wall_ms,
            "phases_ms": totals,
            "alone_ms": alone,
            "flow_cache_first_visit_ms_per_pair": first_visit_ms,
            "machine": machine_info(device),
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
