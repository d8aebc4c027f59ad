"""Thread policy on a shared CPU: torch's speed alone and beside one busy process, per thread setting.

    python bench/thread_policy.py [--seconds 12] [--work forward,train]

A camera box (or a laptop) runs other software too. OpenMP threads that spin-wait for a sibling the OS has
descheduled can make a 2-thread torch process many times slower than 1 thread. This measures, in fresh child
processes (the OpenMP wait policy is read once, when torch loads):
  work     forward: the --preset cpu generator (256×384, widths 16-32-64-128) on one window at a time, what
                    detect.py's live loop runs per frame; train: the quick-start training step (synthetic size,
                    classical flow)
  setting  threads 1 or 2 (this machine's cores), OMP_WAIT_POLICY unset (libgomp's default: spin, then sleep)
           or PASSIVE; 'auto' = utils.threads.auto_threads (cores minus the load of other processes, re-checked)
  beside   alone, or beside one busy-loop process (a pure-Python `while True`)
and prints items/s per case and the ratio beside/alone. Nothing is asserted; results/bench_thread_policy.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = r"""
import os, sys, time
sys.path.insert(0, {root!r})
import torch
threads = {threads!r}
if threads == "auto":
    from utils.threads import auto_threads
    torch.set_num_threads(auto_threads())
else:
    torch.set_num_threads(int(threads))
from config import build_config
work, seconds = {work!r}, {seconds!r}
if work == "forward":
    from model import Generator
    cfg = build_config("ped2", "cpu")
    g = Generator(cfg.in_frames, cfg.g_widths).eval()
    x = torch.rand(1, 3 * cfg.in_frames, cfg.height, cfg.width).contiguous(memory_format=torch.channels_last)
    step = lambda: g(x)
    ctx = torch.inference_mode()
else:
    from training.nets import build_nets
    from training.step import train_step
    import contextlib
    cfg = build_config("synthetic")
    nets = build_nets(cfg, torch.device("cpu"))
    clip = torch.rand(cfg.batch_size, cfg.in_frames + 1, 3, cfg.height, cfg.width) * 2 - 1
    step = lambda: train_step(nets, cfg, clip, torch.device("cpu"))
    ctx = contextlib.nullcontext()
with ctx:
    for _ in range(3):
        step()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        n += 1
print(f"RESULT {{n / (time.perf_counter() - start):.4f}} {{torch.get_num_threads()}}")
"""


def run_case(work: str, threads: str, policy: str | None, seconds: float) -> tuple[float, int]:
    """items/s and the threads torch used, in a fresh child process."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    code = CHILD.format(root=str(ROOT), threads=threads, work=work, seconds=seconds)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT")]
    if not line:
        raise SystemExit(f"child failed: {done.stderr[-2000:]}")
    _, rate, used = line[0].split()
    return float(rate), int(used)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=12.0, help="timed seconds per case (after 3 warm-up steps)")
    parser.add_argument("--work", default="forward,train", help="comma-separated: forward, train")
    parser.add_argument(
        "--settings", default="2,2:PASSIVE,1,auto,auto:PASSIVE", help="threads[:policy], comma-separated"
    )
    args = parser.parse_args()
    rows = []
    for work in args.work.split(","):
        for setting in args.settings.split(","):
            threads, _, policy = setting.partition(":")
            result = {"work": work, "threads": threads, "omp_wait_policy": policy or "default"}
            for beside in ("alone", "busy"):
                busy = None
                if beside == "busy":
                    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
                    time.sleep(1.0)
                try:
                    rate, used = run_case(work, threads, policy or None, args.seconds)
                finally:
                    if busy is not None:
                        busy.kill()
                        busy.wait()
                result[f"{beside}_per_s"], result[f"{beside}_threads_used"] = rate, used
                time.sleep(2.0)
            result["busy_over_alone"] = result["busy_per_s"] / result["alone_per_s"]
            rows.append(result)
            shown = (f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}" for k, v in result.items())
            print(", ".join(shown), flush=True)
    out = ROOT / "results" / "bench_thread_policy.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "cpu": os.uname().machine, "cores": os.cpu_count()}, indent=1))


if __name__ == "__main__":
    main()
