"""Train FFP: a U-Net predicts frame t+1 from frames t-3..t; intensity, gradient, flow and adversarial losses.

    python train.py --dataset ped2                          # Ped2 under data/ped2 (--data_root elsewhere)
    python train.py --dataset ped2 --resume latest          # or --resume weights/ped2_latest.pth
    python train.py --dataset mycam --init_from weights/ped2_cpu.pth   # fine-tune on other data
    torchrun --nproc_per_node=4 train.py --dataset ped2 ...  # DDP: 4 GPUs (NCCL), or 4 CPU processes (gloo)

Under torchrun --batch_size is per process (global batch N × batch_size); each rank trains on its own
shard of every epoch's window order; rank 0 alone logs, validates and saves, and checkpoints hold the
plain modules' weights, so they resume and evaluate in single- or multi-process runs alike.
Speed: --channels_last (auto: timed on the CPU), --amp [--amp_dtype fp16] (bf16 autocast; fp16 + GradScaler on CUDA),
--compile (torch.compile of G and D), --threads; measurements in docs/performance.md.

Writes weights/<dataset>_latest.pth every --save_interval steps and weights/<dataset>_best.pth at the best
validation AUC. "best" is selected WITH TEST LABELS (the test set is the only labelled set these benchmarks
have); "latest" is not, and is what honest results should report. Without usable test labels (none, or
one class only) training runs the same, without validation and without "best".
"""

from __future__ import annotations

import argparse

from cli import ArgumentParser, answer_flags_first, run_cli
from config import FLAG_GROUPS, Config
from config_flags import add_config_flags, check_flag_values


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_flags(parser, tuple(FLAG_GROUPS))
    parser.add_argument(
        "--resume",
        default=None,
        help="continue a run: checkpoint path, or 'latest' for <weights_dir>/<dataset>_latest.pth",
    )
    parser.add_argument(
        "--init_from",
        default=None,
        help="start a NEW run from a checkpoint's weights (fresh optimizers, step 0; any dataset)",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    args = parser.parse_args(argv)
    check_flag_values(args)  # each value on its own; combinations once the run's whole config is known
    return args


if __name__ == "__main__":
    answer_flags_first(parse_args)  # --help and flag errors answer before torch is imported (seconds)

# The heavy imports, after the flags are known to be good (style checkers: E402 is intended here).
import sys
import time

import torch

from cli import StopRequest
from config import STATS_WINDOWS
from dataset import TrainWindows, labels_by_number, prepare_dataset, train_loader, training_videos
from dataset.resample import footage_fps
from errors import FFPError
from evaluation.metrics import compute_metrics
from inference.predict import Cancelled, score_videos, training_psnr_stats
from training.distributed import (
    DistInfo,
    any_rank,
    barrier,
    init_distributed,
    main_first,
    mean_over_ranks,
    shutdown_distributed,
    stop_agreed,
)
from training.nets import accelerate, build_nets, build_schedulers, flow_name, with_resolved_speed
from training.resume import RunState, Start, check_same_data, resolve_start, restore_run
from training.run import Checkpointer, Due, NoOutputs, run_outputs, start_printout, step_progress
from training.step import Nets, Precision, make_precision, train_step
from utils.devices import seed_everything
from utils.threads import configure_threads


def refuse_non_finite(bad: torch.Tensor, run: RunState, cfg: Config, info: DistInfo, saved: Checkpointer) -> None:
    """FFPError when any rank saw a non-finite loss since the last check; the last good checkpoint is kept."""
    if not any_rank(bad, info):
        return
    kept = (
        f"the last good checkpoint {saved.path('latest')} (step {saved.last_saved}) is kept"
        if saved.last_saved is not None
        else "no checkpoint was saved yet by this run"
    )
    raise FFPError(
        f"non-finite loss at or before step {run.step}: training stopped; {kept} "
        f"(lower the learning rate, e.g. --resume latest --lr_g {cfg.lr_g / 10:g})"
    )


def validate_auc(nets: Nets, cfg: Config, files, device: torch.device, stop: StopRequest) -> float | None:
    """Paper-protocol micro-AUC on the test set (test labels: for monitoring and 'best' only); None when a
    stop was requested while it ran."""
    try:
        psnr, numbers = score_videos(nets.g, files.test, cfg, device, cancel=lambda: bool(stop.signum))
    except Cancelled:
        return None
    finally:
        nets.g.train()
    labels = {v.name: labels_by_number(v, numbers[v.name]) for v in files.test}  # paired by frame number
    return compute_metrics(psnr, labels)["micro_auc"]


def psnr_stats(nets: Nets, videos: list, cfg: Config, device: torch.device, stop: StopRequest) -> dict | None:
    """PSNR statistics of the trained generator's predictions on up to STATS_WINDOWS training windows, which a
    completed run stores for detect.py --mode stream; None when a stop request cancelled them (too slow for a
    signal-stop: detect.py computes them when a checkpoint lacks them)."""
    try:
        return training_psnr_stats(
            nets.g, videos, cfg, device, max_windows=STATS_WINDOWS, cancel=lambda: bool(stop.signum)
        )
    except Cancelled:
        return None


# The run reads top to bottom (set-up, the loop, the end): what is due after a step stays visible here, one branch
# each, rather than split up for the complexity count (C901).
def train(start: Start, info: DistInfo, device: torch.device, precision: Precision, outputs: NoOutputs) -> int:  # noqa: C901
    """The training run; under torchrun one copy per rank (rank 0 alone logs, validates and saves: `outputs`)."""
    cfg, started = start.cfg, time.time()
    # --- set-up: data, networks, where the run starts
    seed_everything(cfg.seed)  # the same seed on every rank: identical initial weights
    with main_first(info):  # rank 0 generates the synthetic data once; the others then read it
        files = prepare_dataset(cfg)
    skip_validation = files.why_no_auc(cfg.in_frames)
    videos = training_videos(files, cfg)
    windows = TrainWindows(videos, cfg)  # decodes the training frames: every check runs before step 1
    fingerprint = check_same_data(start, videos, windows.store.lengths)
    nets = build_nets(cfg, device, len(windows))
    cfg = with_resolved_speed(cfg, nets, device)  # saved with the run: a resume keeps the format and cache
    schedulers = build_schedulers(nets, cfg)
    run = restore_run(start, nets, schedulers)
    if info.enabled:  # per-rank random streams (e.g. DataLoader worker seeds); the data order is the sampler's
        torch.manual_seed(cfg.seed + 1_000_003 * info.rank + run.step)
    nets = accelerate(nets, cfg, device, info, precision)
    fps = footage_fps(videos, cfg.dataset)[0]
    checkpointer = Checkpointer(cfg, nets, schedulers, flow_name(nets), fingerprint, start, started, fps)
    printout = start_printout(checkpointer, files, windows, run.step, device, info, skip_validation)
    outputs.begin(printout, checkpointer, run, skip_validation is None, files.label_source)  # rank 0: prints, log

    # --- the loop: one step, then what is due (log, validate, save); G and D are in training mode since built
    bad = torch.zeros((), dtype=torch.bool, device=device)  # any non-finite loss since the last sync
    progress = step_progress(cfg, run.step, info.is_main)  # also re-checks the torch threads (--threads 0: auto)
    first_step, loop_started, stopped = run.step, time.time(), False
    with StopRequest() as stop:
        for clip in train_loader(windows, cfg, run.step, info.rank, info.world_size):
            stopped = stop_agreed(stop.signum, run.step, cfg.log_interval, info, device)
            if run.step >= cfg.iters or stopped:
                break
            parts = train_step(nets, cfg, clip, device)
            bad |= ~torch.isfinite(parts["g_total"])
            for scheduler in schedulers:
                scheduler.step()
            run.step += 1
            outputs.trained()
            due = Due.after(run.step, cfg)
            if due.log:
                refuse_non_finite(bad, run, cfg, info, checkpointer)  # one host sync per logged step, never per step
                outputs.log_losses(
                    mean_over_ranks(parts, info), float(schedulers[0].get_last_lr()[0]), run.step, progress
                )
            progress.update(1)
            if due.validate and outputs.validates:
                auc = validate_auc(nets, cfg, files, device, stop)
                if auc is not None:  # None: a stop request abandoned it
                    outputs.record_validation(run, auc, nets, clip, progress)
            if due.save and outputs.writes:
                outputs.save_latest(run, psnr_stats(nets, videos, cfg, device, stop) if due.end else None)
            if due.validate or due.save:
                barrier(info)  # the other ranks wait for rank 0's validation and files
        # --- the end: a stop request saves where it stopped (a second signal leaves at once)
        if stopped and run.step < cfg.iters:
            outputs.save_on_stop(run, stopped_by=stop.signum, progress=progress)
            barrier(info)
    progress.close()
    outputs.finish(run, first_step, time.time() - loop_started)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = resolve_start(args)
    warning = configure_threads(start.cfg.threads)
    info, device = init_distributed(start.cfg.device)
    try:
        if warning and info.is_main:
            print(warning, flush=True)
        precision = make_precision(start.cfg, device)  # before the slow set-up: an impossible --amp_dtype fails now
        with run_outputs(start.cfg, info) as outputs:  # rank 0: run lock; nothing left behind if it fails early
            return train(start, info, device, precision, outputs)
    finally:
        shutdown_distributed()


if __name__ == "__main__":
    sys.exit(run_cli(main))
