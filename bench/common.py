"""What the speed benchmarks share: sizes, the data they read, timing, memory, naive decoding, output.

Not a test: the benchmarks print numbers, they assert nothing about speed (CI machines vary).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runnable as `python bench/<name>.py` from anywhere
    sys.path.insert(0, str(ROOT))

from config import DATASET_DEFAULTS, Config, build_config  # noqa: E402
from dataset import DatasetFiles, data_workers, find_dataset  # noqa: E402
from utils.files import atomic_write_text  # noqa: E402
from utils.provenance import cpu_name, shared_data_dir  # noqa: E402

# The paper's network at 256×256, and the small CPU configuration (the synthetic dataset's defaults).
_SMALL_KEYS = ("height", "width", "g_widths", "d_widths", "batch_size", "eval_batch_size")
SIZES: dict[str, dict] = {
    "paper": {k: getattr(Config, k) for k in _SMALL_KEYS},
    "small": {k: DATASET_DEFAULTS["synthetic"][k] for k in _SMALL_KEYS},
}


def base_parser(doc: str) -> argparse.ArgumentParser:
    """Flags common to both benchmarks."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="small,paper", help=f"comma-separated, of {', '.join(SIZES)}")
    parser.add_argument("--reps", type=int, default=3, help="timed repetitions per variant (median reported)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    parser.add_argument(
        "--amp", action="store_true", help="bf16 autocast for the project's path (the naive one stays fp32)"
    )
    parser.add_argument(
        "--num_workers",
        type=int,
        default=None,
        help="the project path's DataLoader workers (default: the config's, as eval.py/train.py)",
    )
    parser.add_argument(
        "--data_root",
        default=None,
        help="folder holding ped2/ (default ../shared/data if present, else generated synthetic data)",
    )
    return parser


def parse_sizes(text: str) -> list[str]:
    """'small,paper' -> ['small', 'paper'], refusing unknown names."""
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if s not in SIZES]
    if unknown or not names:
        raise SystemExit(f"--sizes: unknown {unknown or text!r}; choose from {', '.join(SIZES)}")
    return names


def bench_data(data_root: str | None) -> tuple[DatasetFiles, Path]:
    """Real UCSD Ped2 JPEGs when available (../shared/data/ped2), else the generated synthetic dataset."""
    if data_root is None and (shared_data_dir() / "ped2").is_dir():
        data_root = str(shared_data_dir())
    if data_root is not None:
        return find_dataset(data_root, "ped2"), Path(data_root)
    from synthetic import ensure_synthetic

    root = ROOT / "data"
    ensure_synthetic(root, seed=0)
    return find_dataset(root, "synthetic"), root


def size_config(size: str, files: DatasetFiles, data_root: Path, args: argparse.Namespace, **overrides) -> Config:
    """The project's config for `size` on the benchmark data (classical flow: needs no weight file)."""
    values = {
        **SIZES[size],
        "data_root": str(data_root),
        "flownet": "classical",
        "device": args.device,
        "num_workers": args.num_workers,
        **overrides,
    }
    return build_config(files.name, None, values)


def size_fields(cfg: Config, args: argparse.Namespace) -> dict:
    """The leading fields of a summary line: what was measured, under which settings."""
    return {
        "size": f"{cfg.height}x{cfg.width}",
        "widths": "-".join(map(str, cfg.g_widths)),
        "amp": args.amp,
        "num_workers": data_workers(cfg.num_workers, cfg.device),
    }  # -1 (auto) resolved as the loaders do


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so wall-clock times cover it (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_reps(fn: Callable[[], None], reps: int, device: torch.device) -> list[float]:
    """Wall seconds of `reps` calls of fn() (each call is one timed repetition)."""
    times = []
    for _ in range(reps):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def naive_read(path: str | Path, height: int, width: int) -> np.ndarray:
    """The textbook frame read: cv2.imread + resize + BGR->RGB, H×W×3 uint8 (the project's interpolation rule)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    shrink = image.shape[0] * image.shape[1] > height * width
    image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on `device` when --amp, else a disabled (no-op) autocast."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


# ----------------------------------------------------------------------------------------------- memory
def peak_memory_mb(device: torch.device) -> float:
    """This process's peak memory so far, MiB: CUDA max_memory_allocated, else the peak resident set.

    Meant for a fresh process that ran one variant only (see train_speed.py), so both variants pay the same
    baseline (Python, torch, OpenCV). CPU: Linux VmHWM, which starts afresh at exec (ru_maxrss would keep
    the parent's resident set at fork as a floor); elsewhere ru_maxrss. DataLoader workers are not included.
    """
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        status = Path("/proc/self/status").read_text()
        return int(status.split("VmHWM:")[1].split()[0]) / 1024  # kB
    except (OSError, IndexError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# ----------------------------------------------------------------------------------------------- output
def machine_info(device: torch.device) -> dict:
    """What the numbers depend on: device, threads, load (other processes skew CPU timings), the CPU's model and
    vector extension (timings differ several-fold between AVX2 and AVX-512 machines)."""
    info = {
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "loadavg_start": os.getloadavg(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    else:
        info["cpu"] = cpu_name()
    return info


def summary_line(name: str, values: dict) -> str:
    """One parseable line of `key: value` pairs: 'bench: eval_speed, size: 256x256, project_fps: 4.1, ...'.

    Lists and dicts (per-repetition times) are left to the JSON file; floats get 4 significant digits.
    """
    scalars = {k: v for k, v in {"bench": name, **values}.items() if not isinstance(v, (list, dict))}
    parts = [f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}" for k, v in scalars.items()]
    return ", ".join(parts)


def write_json(script: str, results: dict) -> Path:
    """bench/<script>.json next to the script (git-ignored), with the load average at the end added."""
    results["machine"]["loadavg_end"] = os.getloadavg()
    path = Path(script).resolve().with_suffix(".json")
    atomic_write_text(path, json.dumps(results, indent=2) + "\n")
    return path
