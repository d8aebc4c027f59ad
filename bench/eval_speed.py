"""Evaluation speed: the project's streaming predictor versus a naive per-window loop, and the fraction of
the machine's measured convolution throughput that the project's path reaches.

    python bench/eval_speed.py                                  # both sizes on CPU (a few minutes on 2 cores)
    python bench/eval_speed.py --sizes paper --device cuda --amp

Project path (the prediction pass under eval.py's scoring): inference.predict.predict_video_psnr fed by
dataset.video_frame_batches: every frame decoded once by DataLoader workers, windows built on the device, one host
sync per video.
Naive loop (written here): batch 1, five cv2.imread+resize per window, `.item()` per frame, fp32 NCHW
(also with --amp, which autocasts the project's path to bf16 and measures the ceiling in bf16).
Both use the same generator weights (official init; speed does not depend on the values), the same frames
(the first test video of Ped2 when ../shared/data/ped2 exists, else synthetic), in one process; the
repetitions alternate between the two and medians are reported. Both return the same PSNRs (checked).
Ceiling: the best FLOP/s of large 3×3 convolutions (channels-last and NCHW) timed in the same run; the
U-Net's FLOPs per frame are counted by torch.utils.flop_counter (2 per multiply-add, convolutions only).
fraction_of_conv_bound: the project path's own convolution calls re-timed alone, over its wall time.
Prints one `key: value` line per size and writes bench/eval_speed.json.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from common import (
    autocast,
    base_parser,
    bench_data,
    machine_info,
    median,
    naive_read,
    parse_sizes,
    size_config,
    size_fields,
    summary_line,
    synchronize,
    time_reps,
    write_json,
)
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from dataset import Video, to_network_range, video_frame_batches
from evaluation.scores import psnr_per_frame
from inference.predict import generator_from_state, predict_video_psnr
from model import Generator, init_weights

WINDOWS = {"small": 176, "paper": 32}  # predicted frames per repetition (Ped2 test video 01 has 180 frames)
# N, C, H, W of C->C 3×3 convolutions: large ones of the U-Net's channel widths, incl. its full-resolution layer.
CEILING_SHAPES = ((8, 64, 128, 128), (1, 64, 256, 256), (16, 128, 64, 64), (16, 256, 32, 32), (16, 512, 16, 16))


def conv_rates(device: torch.device, amp: bool, reps: int = 3) -> dict[str, float]:
    """{'NxCxHxW/format': FLOP/s} of each CEILING_SHAPES convolution in channels-last and NCHW (median of reps)."""
    scale = 8 if device.type == "cuda" else 1  # keep a GPU busy too
    rates = {}
    for n, c, h, w in CEILING_SHAPES:
        for fmt, label in ((torch.channels_last, "channels_last"), (torch.contiguous_format, "nchw")):
            x = torch.randn(n * scale, c, h, w, device=device).contiguous(memory_format=fmt)
            weight = (torch.randn(c, c, 3, 3, device=device) * 0.05).contiguous(memory_format=fmt)

            def run():
                with torch.inference_mode(), autocast(device, amp):
                    F.conv2d(x, weight, padding=1)

            run()
            flops = 2 * x.shape[0] * c * h * w * c * 9
            rates[f"{n * scale}x{c}x{h}x{w}/{label}"] = flops / median(time_reps(run, reps, device))
    return rates


def unet_flops_per_frame(generator: torch.nn.Module, cfg, device: torch.device) -> int:
    """Convolution FLOPs of one generator forward on one 3T×H×W input."""
    x = torch.zeros(1, 3 * cfg.in_frames, cfg.height, cfg.width, device=device)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        generator(x)
    return counter.get_total_flops()


def isolated_conv_seconds(generator: nn.Module, run: Callable[[], object], device: torch.device, amp: bool) -> float:
    """Seconds the generator's (transposed) convolutions of one `run()` take when each is re-timed alone.

    Records every convolution call (module, input shape, memory format) during the run, then times each
    distinct call in isolation (median of 3) and sums over the calls: the run's time if nothing but its
    convolutions cost anything (no decoding, copies, pooling, concatenation, activations, host syncs).
    """
    calls: Counter = Counter()

    def record(module, inputs, output):
        x = inputs[0]
        nhwc = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        calls[(module, tuple(x.shape), torch.channels_last if nhwc else torch.contiguous_format)] += 1

    handles = [
        m.register_forward_hook(record) for m in generator.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
    ]
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    total = 0.0
    for (module, shape, fmt), count in calls.items():
        x = torch.randn(shape, device=device).contiguous(memory_format=fmt)

        def once():
            with torch.inference_mode(), autocast(device, amp):
                module(x)

        once()
        total += count * median(time_reps(once, 3, device))
    return total


def naive_video_psnr(generator: torch.nn.Module, video: Video, cfg, device: torch.device) -> np.ndarray:
    """The textbook loop: per target frame, read its window's 5 JPEGs, predict with batch 1, `.item()` the PSNR."""
    t, psnr = cfg.in_frames, []
    with torch.no_grad():
        for i in range(t, len(video)):
            frames = np.stack([naive_read(p, cfg.height, cfg.width) for p in video.source.files[i - t : i + 1]])
            clip = to_network_range(torch.from_numpy(frames).permute(0, 3, 1, 2).to(device))
            pred = generator(clip[:t].reshape(1, 3 * t, cfg.height, cfg.width)).float()
            psnr.append(psnr_per_frame(pred, clip[t:]).item())
    return np.array(psnr, dtype=np.float32)


def project_video_psnr(generator: torch.nn.Module, video: Video, cfg, device: torch.device, amp: bool) -> np.ndarray:
    """The project's path, as eval.py runs it for one video (under bf16 autocast with --amp)."""
    with autocast(device, amp):
        batches = video_frame_batches(video, cfg, cfg.eval_batch_size)
        return predict_video_psnr(generator, batches, cfg.in_frames, device)


def bench_size(size: str, files, root, args, device: torch.device) -> dict:
    """Time both paths on one video clip at `size`, and the convolution ceiling between them; summary values."""
    cfg = size_config(size, files, root, args)
    source = files.test[0]
    video = source.head(WINDOWS[size] + cfg.in_frames)
    torch.manual_seed(0)
    weights = Generator(cfg.in_frames, cfg.g_widths)
    init_weights(weights)
    # Built as eval.py builds it from a checkpoint, so the benchmark follows the project's choices.
    generator = generator_from_state({"net_g": weights.state_dict()}, cfg, device, "benchmark weights")
    flops = unet_flops_per_frame(generator, cfg, device)
    paths = {
        "project": lambda clip: project_video_psnr(generator, clip, cfg, device, args.amp),
        "naive": lambda clip: naive_video_psnr(generator, clip, cfg, device),
    }
    warm = video.head(cfg.eval_batch_size + cfg.in_frames)
    results = {name: path(warm) for name, path in paths.items()}  # warm-up: allocator, oneDNN kernels
    times, ceilings = {"project": [], "naive": []}, []
    for _ in range(args.reps):  # alternate, so a change in machine load hits all measurements alike
        ceilings.append(conv_rates(device, args.amp))
        for name, path in paths.items():
            times[name] += time_reps(lambda: results.__setitem__(name, path(video)), 1, device)
    rates = {shape: median([c[shape] for c in ceilings]) for shape in ceilings[0]}
    ceiling_shape = max(rates, key=rates.get)
    ceiling = rates[ceiling_shape]
    conv_bound_s = isolated_conv_seconds(generator, lambda: paths["project"](video), device, args.amp)
    n = len(video) - cfg.in_frames
    project_fps, naive_fps = n / median(times["project"]), n / median(times["naive"])
    return {
        **size_fields(cfg, args),
        "frames": n,
        "eval_batch_size": cfg.eval_batch_size,
        "project_fps": project_fps,
        "naive_fps": naive_fps,
        "speedup_vs_naive": project_fps / naive_fps,
        "fraction_of_ceiling": project_fps * flops / ceiling,
        "naive_fraction_of_ceiling": naive_fps * flops / ceiling,
        "fraction_of_conv_bound": conv_bound_s / median(times["project"]),
        "unet_gflop_per_frame": flops / 1e9,
        "ceiling_gflops": ceiling / 1e9,
        "ceiling_conv": ceiling_shape,
        "max_psnr_diff_db": float(np.abs(results["project"] - results["naive"]).max()),
        "project_rep_s": times["project"],
        "naive_rep_s": times["naive"],
        "conv_gflops": {k: v / 1e9 for k, v in rates.items()},
    }


def main(argv: list[str] | None = None) -> dict:
    args = base_parser(__doc__).parse_args(argv)
    device = torch.device(args.device)
    files, root = bench_data(args.data_root)
    results = {
        "machine": machine_info(device),
        "data": f"{files.name} test video {files.test[0].name}",
        "amp": args.amp,
        "sizes": {},
    }
    for size in parse_sizes(args.sizes):
        values = bench_size(size, files, root, args, device)
        results["sizes"][size] = values
        print(summary_line("eval_speed", values), flush=True)
    synchronize(device)
    print(f"wrote {write_json(__file__, results)}")
    return results


if __name__ == "__main__":
    main()
