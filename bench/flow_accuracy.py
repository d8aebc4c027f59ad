"""End-point error of the flow estimators on known shifts of a real frame, and their time per pair.

Usage: python bench/flow_accuracy.py [--frame PATH] [--height 256 --width 384] [--reps 3] [--threads 2]

The frame (default: UCSD Ped2 Test001 frame 101, as in data/ped2/testing/frames/01/100.jpg) is enlarged 4× (bicubic),
cut at two places 4·(dx, dy) apart and each cut reduced 4× by area averaging, at the --height × --width the
training uses. So frame b(p) = frame a(p − d): the true flow from a to b is d everywhere, also for sub-pixel d, with no
interpolation error beyond what both frames share. The error is the mean ‖flow − d‖ over the 20 % most textured
pixels (largest gradient magnitude) at least 16 px from the border: flat road gives any estimator nothing to match.
Each RIFE variant sets IFNet's scales (its own inference: 8, 4, 2, 1) and timestep t. Times are per pair at batch 4,
the motion loss's: forward (no grad: the real frame's flow) and forward + backward into frame b (the prediction's).
Writes bench/flow_accuracy.json; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runnable as `python bench/flow_accuracy.py` from anywhere
    sys.path.insert(0, str(ROOT))

from bench.flow_speed import time_estimator  # noqa: E402
from flownet import ClassicalFlow, load_ifnet  # noqa: E402
from flownet.estimator import freeze  # noqa: E402
from utils.files import atomic_write_text  # noqa: E402

SHIFTS = ((0.25, 0.0), (0.5, 0.5), (1.0, 0.0), (3.0, -2.0), (6.0, 4.0))
RIFE_VARIANTS = {  # name: (scales, timestep)
    "rife 8/4/2/1 t=0.5": ((8.0, 4.0, 2.0, 1.0), 0.5),
    "rife 4/2/1/1 t=0.5": ((4.0, 2.0, 1.0, 1.0), 0.5),
    "rife 8/4/2/0.5 t=0.5": ((8.0, 4.0, 2.0, 0.5), 0.5),
    "rife 4/2/1/0.5 t=0.5": ((4.0, 2.0, 1.0, 0.5), 0.5),
    "rife 4/2/1/0.5 t=0.25": ((4.0, 2.0, 1.0, 0.5), 0.25),
}
SHARED = ROOT.parent / "shared" / "data"
UPSAMPLE = 4
MARGIN = 16
TEXTURED = 0.2
BATCH = 4


def ped2_frame() -> Path | None:
    """Ped2 Test001 frame 101 under data/ (or the project machines' shared copy), None when neither has it."""
    candidates = [root / "ped2" / "testing" / "frames" / "01" / "100.jpg" for root in (ROOT / "data", SHARED)]
    return next((path for path in candidates if path.is_file()), None)


def shifted_pair(image: np.ndarray, shift: tuple[float, float], size: tuple[int, int]) -> tuple[torch.Tensor, ...]:
    """(frame a, frame b) 1×3×H×W in [-1, 1] with b(p) = a(p − shift), from an RGB uint8 `image`."""
    h, w = size
    big = cv2.resize(image, ((w + 2 * MARGIN) * UPSAMPLE, (h + 2 * MARGIN) * UPSAMPLE), interpolation=cv2.INTER_CUBIC)
    dx, dy = (round(s * UPSAMPLE) for s in shift)
    top, left = MARGIN * UPSAMPLE, MARGIN * UPSAMPLE

    def cut(y: int, x: int) -> torch.Tensor:
        crop = big[y : y + h * UPSAMPLE, x : x + w * UPSAMPLE]
        small = cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 127.5 - 1
        return torch.from_numpy(small).permute(2, 0, 1)[None]

    return cut(top, left), cut(top - dy, left - dx)


def textured_mask(frame: torch.Tensor) -> torch.Tensor:
    """H×W bool: the TEXTURED fraction of pixels with the largest gradient magnitude, MARGIN px from the border."""
    gray = frame[0].mean(0)
    gy, gx = torch.gradient(gray)
    magnitude = (gx**2 + gy**2).sqrt()
    inner = torch.zeros_like(magnitude, dtype=torch.bool)
    inner[MARGIN:-MARGIN, MARGIN:-MARGIN] = True
    threshold = torch.quantile(magnitude[inner], 1 - TEXTURED)
    return inner & (magnitude >= threshold)


def end_point_error(estimator: torch.nn.Module, pair: tuple[torch.Tensor, ...], shift, mask) -> float:
    """Mean ‖flow − shift‖ (px) over `mask`."""
    with torch.no_grad():
        flow = estimator(*pair)[0]
    error = ((flow[0] - shift[0]) ** 2 + (flow[1] - shift[1]) ** 2).sqrt()
    return float(error[mask].mean())


def time_per_pair(estimator: torch.nn.Module, size: tuple[int, int], reps: int) -> dict[str, float]:
    """Median ms per pair at batch BATCH: forward without grad, and forward + backward into frame b."""
    timing = time_estimator(estimator, BATCH, size, reps)
    return {f"{mode}_ms": timing[mode]["median_ms"] for mode in ("forward", "forward_backward")}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frame", type=Path, default=None, help="an image (default: Ped2 Test001 frame 101)")
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=384)
    parser.add_argument("--reps", type=int, default=3, help="timed repetitions per variant (median reported)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().with_suffix(".json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    frame = args.frame or ped2_frame()
    if frame is None:
        parser.error("no Ped2 frame under data/ped2/testing/frames/01/100.jpg: pass --frame PATH")
    image = cv2.cvtColor(cv2.imread(str(frame)), cv2.COLOR_BGR2RGB)
    size = (args.height, args.width)
    estimators = {"classical": freeze(ClassicalFlow(), "cpu")}
    estimators |= {name: freeze(load_ifnet(None, *variant), "cpu") for name, variant in RIFE_VARIANTS.items()}
    pairs = {shift: shifted_pair(image, shift, size) for shift in SHIFTS}
    mask = textured_mask(pairs[SHIFTS[0]][0])
    results: dict = {"frame": str(frame), "size": list(size), "threads": args.threads, "torch": torch.__version__}
    results["estimators"] = {}
    print(f"| estimator | {' | '.join(f'({dx:g}, {dy:g})' for dx, dy in SHIFTS)} | forward ms | fwd+bwd ms |")
    print("|---" * (len(SHIFTS) + 3) + "|")
    for name, estimator in estimators.items():
        errors = {f"{dx:g},{dy:g}": end_point_error(estimator, pairs[(dx, dy)], (dx, dy), mask) for dx, dy in SHIFTS}
        timing = time_per_pair(estimator, size, args.reps)
        results["estimators"][name] = {"epe_px": errors, **timing}
        cells = " | ".join(f"{e:.3f}" for e in errors.values())
        print(f"| {name} | {cells} | {timing['forward_ms']:.0f} | {timing['forward_backward_ms']:.0f} |", flush=True)
    atomic_write_text(args.out, json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
