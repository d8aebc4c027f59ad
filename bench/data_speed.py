"""Data speed: training windows per second from video files vs the same frames as JPEG folders, and set-up costs.

    python bench/data_speed.py                   # real Ped2 training videos (../shared), 256×384
    python bench/data_speed.py --height 256 --width 256 --windows 2000

The Ped2 training frame folders are also written as MJPG .avi files (one per video, OpenCV) in a temp folder,
so both sources hold the same frames. Measured, per source, in this process (no DataLoader workers):
  - set-up: building TrainWindows (decoding every frame into RAM; for files beyond the RAM budget, the
    one-time extraction into the frame cache);
  - windows/s after the first epoch (caches built), random windows as the sampler draws them, for:
    frame folders read on demand (--cache_frames false), video files through the extraction cache
    (--cache_max_gb 0: what a dataset larger than RAM gets), and the RAM cache (the default when it fits).
Also times generating the synthetic dataset (the quick start's first step). Writes bench/data_speed.json.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from common import bench_data, machine_info, write_json  # noqa: F401  (sets sys.path)

from config import build_config
from dataset import TrainWindows, Video, open_source


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=384)
    parser.add_argument("--windows", type=int, default=1000, help="random windows timed per path")
    parser.add_argument("--data_root", default=None, help="folder holding ped2/ (default ../shared/data)")
    return parser.parse_args()


def as_video_files(videos: list[Video], folder: Path) -> list[Video]:
    """Each frame folder written as an MJPG .avi (same frames), as a camera or a download would deliver them."""
    folder.mkdir(parents=True, exist_ok=True)
    result = []
    for video in videos:
        frames = [cv2.imread(str(p)) for p in video.source.files]
        path = folder / f"{video.name}.avi"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, frames[0].shape[1::-1])
        for frame in frames:
            writer.write(frame)
        writer.release()
        result.append(Video(video.name, open_source(path)))
    return result


def windows_per_s(windows: TrainWindows, n: int) -> float:
    """Random windows per second, after 50 warm-up windows: the set-up has already built the RAM or extraction
    cache, so this is the rate of every later epoch (the JPEG files are in the OS page cache by then)."""
    order = np.random.default_rng(0).integers(0, len(windows), n)
    for i in order[:50]:
        windows[int(i)]
    started = time.perf_counter()
    for i in order:
        windows[int(i)]
    return n / (time.perf_counter() - started)


def timed(fn):
    """(fn(), seconds it took)."""
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def main() -> int:
    args = parse_args()
    files, root = bench_data(args.data_root)
    base = {"data_root": str(root), "height": args.height, "width": args.width}
    tmp = Path(tempfile.mkdtemp(prefix="ffp_data_speed_"))
    results = {
        "size": f"{args.height}x{args.width}",
        "videos": len(files.train),
        "frames": sum(len(v) for v in files.train),
    }
    try:
        files_as_avi, seconds = timed(lambda: as_video_files(files.train, tmp / "avi"))
        results["write_avi_s"] = seconds
        paths = {
            "jpeg_folders_on_demand": (files.train, {"cache_frames": False}),
            "avi_extraction_cache": (files_as_avi, {"cache_max_gb": 0.0, "cache_dir": str(tmp / "cache")}),
            "jpeg_folders_ram": (files.train, {}),
            "avi_ram": (files_as_avi, {}),
        }
        for name, (videos, extra) in paths.items():
            cfg = build_config(files.name, None, {**base, **extra})
            windows, setup = timed(lambda: TrainWindows(videos, cfg))
            if name == "avi_extraction_cache":
                _, reuse = timed(lambda: TrainWindows(videos, cfg))
                results[f"{name}_reuse_s"] = reuse
            results[f"{name}_setup_s"] = setup
            results[f"{name}_windows_per_s"] = windows_per_s(windows, args.windows)
            print(f"{name}: set-up {setup:.1f} s, {results[f'{name}_windows_per_s']:.0f} windows/s", flush=True)
        from synthetic import ensure_synthetic

        _, results["synthetic_generation_s"] = timed(lambda: ensure_synthetic(tmp / "synthetic_root"))
        print(f"synthetic dataset generation: {results['synthetic_generation_s']:.1f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results["machine"] = machine_info(torch.device("cpu"))
    write_json(__file__, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
