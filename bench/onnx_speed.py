"""ONNX Runtime versus PyTorch on CPU: frames/s and per-frame latency of the shipped model, and install sizes.

    python bench/onnx_speed.py                     # 2 threads and 1, batch 1 and the eval batch (a few minutes)
    python bench/onnx_speed.py --rounds 5 --threads 1

Model: weights/ped2_cpu.pth (`--preset cpu`: 256×384, generator widths 16-32-64-128) and its ONNX export (made
here with `export.py --format onnx`). Frames: the first 40 of Ped2 test video 01 (../shared/data; random frames
when absent), decoded once before timing: what is timed is prediction with scoring (PSNR and error map), the part
the runtimes differ in. Each case (runtime × threads) runs in a fresh process, the cases alternate for
`--rounds` rounds, and medians over rounds are reported:
  batch 1     the live loop's call: one window (4 past frames + the target) per call, `Predictor.targets`;
              per-frame latency = the median call time, frames/s = calls per second
  eval batch  `Predictor.stream` over batches of the checkpoint's eval batch size (16): frames/s
Both runtimes score the same windows; the largest PSNR difference between them is printed (it must stay < 0.01 dB).
Peak RSS: each case's process at its end (runtime, model, the 40 frames and activations).
Install sizes: the files the pip distributions of each runtime (and their dependencies, NumPy excepted: both need
it) put on disk in this environment (importlib.metadata), in MiB.
Prints one `key: value` line per case and writes bench/onnx_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHIPPED = ROOT / "weights" / "ped2_cpu.pth"
FRAMES = 40
BATCH1_CALLS = 36


def frames_for(height: int, width: int):
    """FRAMES frames L×H×W×3 uint8 of Ped2 test video 01 (random when the data is absent) and where they come from."""
    import numpy as np

    from dataset import open_source

    folder = ROOT.parent / "shared" / "data" / "ped2" / "testing" / "frames" / "01"
    if folder.is_dir():
        source = open_source(folder)
        return np.stack([rgb for _, (_, rgb) in zip(range(FRAMES), source.frames(height, width))]), str(folder)
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (FRAMES, height, width, 3), dtype=np.uint8), "random frames"


def worker(runtime: str, threads: int, onnx_path: str) -> dict:
    """One case in this process: batch-1 call times and eval-batch frames/s."""
    import numpy as np

    from inference.runtime import warm_up

    if runtime == "onnxruntime":
        from inference.onnx_model import load_onnx_model

        predictor, info = load_onnx_model(onnx_path, threads=threads)
        cfg = info.cfg
    else:
        import torch

        from checkpoint import checkpoint_config, load_checkpoint
        from inference.predict import TorchPredictor, generator_from_state

        torch.set_num_threads(threads)
        state = load_checkpoint(SHIPPED)
        cfg = checkpoint_config(state)
        device = torch.device("cpu")
        predictor = TorchPredictor(generator_from_state(state, cfg, device, "shipped"), cfg.in_frames, device)
    frames, source = frames_for(cfg.height, cfg.width)
    t = cfg.in_frames
    warm_up(predictor, (cfg.height, cfg.width))
    calls, psnr1 = [], []
    for i in range(t, t + BATCH1_CALLS):
        start = time.perf_counter()
        pred = predictor.targets(frames[i - t : i + 1], [t])
        calls.append(time.perf_counter() - start)
        psnr1.append(float(pred.psnr[0]))
    batch = cfg.eval_batch_size
    # Each runtime's own batch format, made before timing: NumPy B×H×W×3 for ONNX Runtime, torch B×3×H×W for torch.
    batches = [frames[i : i + batch] for i in range(0, FRAMES, batch)]
    if runtime == "torch":
        batches = [torch.from_numpy(b).permute(0, 3, 1, 2).contiguous() for b in batches]
    list(predictor.stream(batches[:1]))  # warm-up at this batch size
    start = time.perf_counter()
    psnr = np.concatenate([p.psnr for p in predictor.stream(batches)])
    seconds = time.perf_counter() - start
    return {
        "batch1_latency_ms": 1000 * statistics.median(calls),
        "batch1_fps": 1 / statistics.median(calls),
        "eval_batch": batch,
        "eval_batch_fps": len(psnr) / seconds,
        "peak_rss_mib": peak_rss_mib(),
        "psnr": psnr.tolist(),
        "psnr_batch1": psnr1,
        "frames": source,
    }


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM) in MiB: runtime, model, frames and activations together."""
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("VmHWM")).split()[1]) / 1024


def distribution_mib(name: str, skip: frozenset = frozenset({"numpy"}), seen: set | None = None) -> float:
    """MiB of the files pip installed for distribution `name` and its requirements (recursively, `skip` excepted),
    counted once each."""
    seen = set() if seen is None else seen
    key = name.lower().replace("_", "-")
    if key in seen or key in skip:
        return 0.0
    seen.add(key)
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return 0.0
    total = sum((f.size or 0) for f in dist.files or [])
    for requirement in dist.requires or []:
        if "extra ==" in requirement:
            continue
        dep = requirement.split(";")[0].split("[")[0]
        for stop in "<>=!~ (":
            dep = dep.split(stop)[0]
        total += distribution_mib(dep.strip(), skip, seen) * 2**20
    return total / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every case, alternating (default 3)")
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1], help="thread counts (default: 2 1)")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.worker[2])))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "ped2.onnx"
        subprocess.run([sys.executable, "export.py", str(SHIPPED), str(onnx_path)], cwd=ROOT, check=True)
        cases = [(runtime, n) for n in args.threads for runtime in ("onnxruntime", "torch")]
        runs: dict[str, list[dict]] = {f"{r}/{n}": [] for r, n in cases}
        for _ in range(args.rounds):
            for runtime, n in cases:
                env = {**os.environ, "OMP_NUM_THREADS": str(n)}
                out = subprocess.run(
                    [sys.executable, __file__, "--worker", runtime, str(n), str(onnx_path)],
                    cwd=ROOT, env=env, capture_output=True, text=True, check=True,
                )  # fmt: skip
                runs[f"{runtime}/{n}"].append(json.loads(out.stdout.strip().splitlines()[-1]))
    results: dict = {"machine": {"cpu_count": os.cpu_count(), "loadavg": os.getloadavg()}, "cases": {}}
    try:
        from utils.provenance import cpu_name

        results["machine"]["cpu"] = cpu_name()
    except Exception:  # the name is informative only
        pass
    for case, reps in runs.items():
        other = runs[
            case.replace("onnxruntime", "torch") if "onnxruntime" in case else case.replace("torch", "onnxruntime")
        ]
        diff = max(
            abs(a - b)
            for x, y in zip(reps, other)
            for key in ("psnr", "psnr_batch1")  # the eval-batch pass and the one-window calls
            for a, b in zip(x[key], y[key])
        )
        summary = {
            "case": case,
            "batch1_latency_ms": statistics.median(r["batch1_latency_ms"] for r in reps),
            "batch1_fps": statistics.median(r["batch1_fps"] for r in reps),
            "eval_batch": reps[0]["eval_batch"],
            "eval_batch_fps": statistics.median(r["eval_batch_fps"] for r in reps),
            "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in reps),
            "max_psnr_difference_db": diff,
            "frames": reps[0]["frames"],
        }
        results["cases"][case] = {**summary, "rounds": [{k: v for k, v in r.items() if "psnr" not in k} for r in reps]}
        print(", ".join(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}" for k, v in summary.items()))
    sizes = {"onnxruntime": distribution_mib("onnxruntime"), "torch": distribution_mib("torch")}
    results["install_mib_without_numpy"] = sizes
    print(", ".join(f"install {k}: {v:.0f} MiB" for k, v in sizes.items()))
    path = Path(__file__).with_suffix(".json")
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
