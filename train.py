"""Train FFP: a U-Net predicts frame t+1 from frames t-3..t; intensity, gradient, flow and adversarial losses.

    python train.py --dataset ped2 --data_root ../shared/data
    python train.py --dataset ped2 --resume latest          # or --resume weights/ped2_latest.pth
    torchrun --nproc_per_node=4 train.py --dataset ped2 ...  # DDP: 4 GPUs (NCCL), or 4 CPU processes (gloo)

Under torchrun --batch_size is per process (global batch N × batch_size); each rank trains on its own
shard of every epoch's window order; rank 0 alone logs, validates and saves, and checkpoints hold the
plain modules' weights, so they resume and evaluate in single- or multi-process runs alike.
Speed: --channels_last (auto: on), --amp [--amp_dtype fp16] (bf16 autocast; fp16 + GradScaler on CUDA),
--compile (torch.compile of G and D); measurements in bench/README.md.

Writes weights/<dataset>_latest.pth every --save_interval steps and weights/<dataset>_best.pth at the best
validation AUC. "best" is selected WITH TEST LABELS (the test set is the only labelled set these benchmarks
have); "latest" is not, and is what honest results should report.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import time
from pathlib import Path

import torch
from tensorboardX import SummaryWriter
from tqdm import tqdm

from cli import ArgumentParser, run_cli
from config import Config, add_config_flags, config_from_namespace
from dataset import TrainWindows, prepare_dataset, scored_labels, train_loader
from evaluation.metrics import compute_metrics
from evaluation.predict import score_videos, training_psnr_stats
from flownet import FLOW_LOSS_SCALE, build_flow_estimator
from model import Discriminator, Generator, init_weights
from training.checkpoint import load_checkpoint, load_state_strict, save_checkpoint
from training.distributed import (DistInfo, any_rank, barrier, init_distributed, main_first, mean_over_ranks,
                                  shutdown_distributed, wrap_ddp)
from training.step import Nets, Precision, make_precision, split_clip, train_step, use_channels_last
from utils import FFPError, atomic_write_text, check_writable, seed_everything


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_flags(parser)
    parser.add_argument("--resume", default=None, help="checkpoint path, or 'latest' for weights/<ds>_latest.pth")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    return parser.parse_args(argv)


def resolve_resume(args: argparse.Namespace) -> dict | None:
    """Load the checkpoint named by --resume ('latest' -> <weights_dir>/<dataset>_latest.pth)."""
    if args.resume is None:
        return None
    path = Path(args.resume)
    if args.resume == "latest":
        path = Path(args.weights_dir or "weights") / f"{args.dataset or 'synthetic'}_latest.pth"
    state = load_checkpoint(path)
    for key in ("net_d", "optim_g", "optim_d", "sched_g", "sched_d", "step"):
        if key not in state:
            raise FFPError(f"--resume {path}: not a training checkpoint (no '{key}'; generator-only checkpoints "
                           f"can be evaluated but not resumed)")
    return state


def build_nets(cfg: Config, device: torch.device) -> Nets:
    """Generator, discriminator (official init), Adam optimizers and the frozen flow estimator.

    G and D take the --channels_last memory format before the optimizers exist, so the optimizer state
    (and a resumed one, copied in) shares the parameters' layout.
    """
    g = Generator(cfg.in_frames, cfg.g_widths)
    d = Discriminator(cfg.d_widths)
    init_weights(g)
    init_weights(d)
    memory_format = torch.channels_last if use_channels_last(cfg, device) else torch.contiguous_format
    g, d = g.to(device, memory_format=memory_format), d.to(device, memory_format=memory_format)
    flow, _ = build_flow_estimator(cfg.flownet, cfg.flownet_ckpt, device)
    opt_g = torch.optim.Adam(g.parameters(), lr=cfg.lr_g, betas=cfg.adam_betas)
    opt_d = torch.optim.Adam(d.parameters(), lr=cfg.lr_d, betas=cfg.adam_betas)
    return Nets(g, d, opt_g, opt_d, flow, FLOW_LOSS_SCALE, memory_format=memory_format)


def accelerate(nets: Nets, cfg: Config, device: torch.device, info: DistInfo, precision: Precision) -> Nets:
    """The step's runners around the plain modules (same parameters): --compile and DDP; and --amp's `precision`.

    compile(DDP(module)) is the order that lets torch.compile split its graphs at DDP's gradient buckets.
    G's adversarial term gets a D that is compiled but never DDP-wrapped (see training/step.py); D's own
    update gets the DDP one.
    """
    fast = torch.compile if cfg.compile else (lambda module: module)
    ddp = (lambda module: wrap_ddp(module, device)) if info.enabled else (lambda module: module)
    d_run = fast(nets.d)
    d_sync = fast(ddp(nets.d)) if info.enabled else d_run
    return dataclasses.replace(nets, g_run=fast(ddp(nets.g)), d_run=d_run, d_sync=d_sync,
                               precision=precision)


class StopRequest:
    """SIGINT/SIGTERM: the first asks the loop to save and stop after the current step; a second exits at once."""

    def __init__(self):
        self.requested = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        if self.requested:
            raise SystemExit(128 + signum)
        self.requested = True
        tqdm.write(f"signal {signum}: saving a checkpoint at the current step, then stopping "
                   f"(send again to exit at once)")


def validate_auc(nets: Nets, cfg: Config, files, device: torch.device) -> float:
    """Paper-protocol micro-AUC on the test set (uses test labels: for monitoring and 'best' only)."""
    psnr = score_videos(nets.g, files.test, cfg, device)
    nets.g.train()
    return compute_metrics(psnr, scored_labels(files.test, cfg.in_frames))["micro_auc"]


def validate_and_log(writer: SummaryWriter, nets: Nets, cfg: Config, files, clip: torch.Tensor,
                     device: torch.device, step: int) -> float:
    """Rank 0: validation micro-AUC to tensorboard and the console, plus images of the last batch; the AUC."""
    auc = validate_auc(nets, cfg, files, device)
    writer.add_scalar("val/micro_auc", auc, step)
    log_images(writer, nets, clip, device, step)
    tqdm.write(f"step {step}: validation micro-AUC {auc:.4f} (test labels; used only to pick 'best')")
    return auc


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    resume = resolve_resume(args)          # every rank loads it: DDP resumes from identical states
    base = Config.from_dict(resume["config"]) if resume else None
    cfg = config_from_namespace(args, base)
    info, device = init_distributed(cfg.device)
    try:
        return train(cfg, resume, info, device)
    finally:
        shutdown_distributed()


def train(cfg: Config, resume: dict | None, info: DistInfo, device: torch.device) -> int:
    """The training loop; under torchrun one copy per rank, rank 0 alone logs, validates and saves."""
    process_start = time.time()
    prior_seconds = float(resume.get("train_seconds", 0.0)) if resume else 0.0
    weights_dir, run_dir = Path(cfg.weights_dir), Path(cfg.log_dir) / f"{cfg.dataset}"
    precision = make_precision(cfg, device)   # before any slow set-up: an impossible --amp_dtype fails at once
    if info.is_main:
        check_writable(weights_dir, "--weights_dir")
        check_writable(run_dir, "--log_dir")
    seed_everything(cfg.seed)   # the same seed on every rank: identical initial weights
    with main_first(info):      # rank 0 generates the synthetic data once; the others then read it
        files = prepare_dataset(cfg)
    windows = TrainWindows(files.train, cfg)
    nets = build_nets(cfg, device)
    sched_g = torch.optim.lr_scheduler.MultiStepLR(nets.opt_g, list(cfg.lr_drop_steps), cfg.lr_gamma)
    sched_d = torch.optim.lr_scheduler.MultiStepLR(nets.opt_d, list(cfg.lr_drop_steps), cfg.lr_gamma)
    step, history = restore(resume, nets, sched_g, sched_d) if resume else (0, [])
    best_auc = max([h["val_auc"] for h in history if "val_auc" in h], default=-1.0)
    if info.enabled:  # per-rank random streams (e.g. DataLoader worker seeds); the data order is the sampler's
        torch.manual_seed(cfg.seed + 1_000_003 * info.rank + step)
    nets = accelerate(nets, cfg, device, info, precision)
    flow_name = type(nets.flow).__name__ if nets.flow is not None else "none"

    writer = None
    if info.is_main:
        print(f"FFP training on {cfg.dataset} ({len(files.train)} videos, {len(windows)} windows), device {device}"
              f"{f' ×{info.world_size} processes (batch {cfg.batch_size} each)' if info.enabled else ''}, flow "
              f"estimator {flow_name}, {'resuming at step ' + str(step) if resume else 'from scratch'}\n"
              f"{cfg.pretty()}")
        atomic_write_text(run_dir / "config.json", json.dumps(cfg.to_dict(), indent=2))
        writer = SummaryWriter(str(run_dir))

    last_saved = step if resume else None   # step of the newest 'latest' on disk written by this run

    def checkpoint(kind: str, final: bool = False) -> None:
        """Rank 0 only. The plain modules' weights: interchangeable between DDP and single-process runs.

        The final save also stores PSNR statistics of the training predictions, which `detect.py --mode
        stream` uses to normalise an unlabelled stream (only then: it costs up to 500 forward passes).
        """
        nonlocal last_saved
        state = {"net_g": nets.g.state_dict(), "net_d": nets.d.state_dict(),
                 "optim_g": nets.opt_g.state_dict(), "optim_d": nets.opt_d.state_dict(),
                 "sched_g": sched_g.state_dict(), "sched_d": sched_d.state_dict(), "step": step,
                 "config": cfg.to_dict(), "rng": {"torch": torch.get_rng_state()}, "history": history,
                 "flownet": {"name": flow_name, "checkpoint": cfg.flownet_ckpt},
                 "selected_with_test_labels": kind == "best",
                 # wall-clock seconds of all sessions of this run so far (setup, validation and saves included)
                 "train_seconds": prior_seconds + time.time() - process_start}
        if final:
            state["psnr_stats"] = training_psnr_stats(nets.g, files.train, cfg, device, max_windows=500)
        save_checkpoint(weights_dir / f"{cfg.dataset}_{kind}.pth", state)
        if kind == "latest":
            last_saved = step

    stop = StopRequest()
    nets.g.train()
    nets.d.train()
    bad = torch.zeros((), dtype=torch.bool, device=device)   # any non-finite loss since the last sync
    bar = tqdm(total=cfg.iters, initial=step, dynamic_ncols=True, disable=None if info.is_main else True)
    started, first_step, stopped = time.time(), step, False
    for clip in train_loader(windows, cfg, step, info.rank, info.world_size):
        stopped = should_stop(stop, step, cfg, info, device)
        if step >= cfg.iters or stopped:
            break
        parts = train_step(nets, cfg, clip, device)
        bad |= ~torch.isfinite(parts["g_total"])
        sched_g.step()
        sched_d.step()
        step += 1
        bar.update(1)
        at_end = step == cfg.iters
        if step % cfg.log_interval == 0 or at_end or step % cfg.save_interval == 0:
            if any_rank(bad, info):  # one host sync per logging/saving step, never per iteration
                kept = (f"the last good checkpoint {weights_dir / (cfg.dataset + '_latest.pth')} (step {last_saved}) "
                        f"is kept" if last_saved is not None else "no checkpoint was saved yet by this run")
                raise FFPError(f"non-finite loss at or before step {step}: training stopped; {kept} "
                               f"(try a lower --lr_g)")
            values = mean_over_ranks(parts, info)
            if writer is not None:
                log_scalars(writer, values, sched_g.get_last_lr()[0], step)
                bar.set_postfix({k: f"{values[k]:.4g}" for k in ("g_total", "int", "psnr") if k in values})
        validate_now, save_now = step % cfg.val_interval == 0 or at_end, step % cfg.save_interval == 0 or at_end
        if info.is_main and validate_now:
            auc = validate_and_log(writer, nets, cfg, files, clip, device, step)
            history.append({"step": step, "val_auc": auc})
            if auc > best_auc:
                best_auc = auc
                checkpoint("best")
        if info.is_main and save_now:
            checkpoint("latest", final=at_end)
        if validate_now or save_now:
            barrier(info)   # the other ranks wait for rank 0's validation and files
    if stopped and step < cfg.iters:
        if info.is_main:
            checkpoint("latest", final=True)
            print(f"stopped at step {step}; resume with --resume latest")
        barrier(info)
    bar.close()
    if writer is not None:
        writer.close()
        print(f"trained steps {first_step}..{step} in {time.time() - started:.0f}s; latest: "
              f"{weights_dir / (cfg.dataset + '_latest.pth')} (best by test-label AUC {best_auc:.4f}: "
              f"{weights_dir / (cfg.dataset + '_best.pth')})")
    return 0


def restore(resume: dict, nets: Nets, sched_g, sched_d) -> tuple[int, list]:
    """Load a training checkpoint into the plain modules, optimizers and schedulers; returns (step, history)."""
    load_state_strict(nets.g, resume["net_g"], "--resume generator")
    load_state_strict(nets.d, resume["net_d"], "--resume discriminator")
    nets.opt_g.load_state_dict(resume["optim_g"])
    nets.opt_d.load_state_dict(resume["optim_d"])
    sched_g.load_state_dict(resume["sched_g"])
    sched_d.load_state_dict(resume["sched_d"])
    torch.set_rng_state(resume["rng"]["torch"])
    return resume["step"], list(resume.get("history", []))


def should_stop(stop: StopRequest, step: int, cfg: Config, info: DistInfo, device: torch.device) -> bool:
    """Whether a SIGINT/SIGTERM asks to stop before this step.

    One process: at once. Under DDP the ranks must stop at the same step (a rank leaving early would hang
    the others in the next all-reduce), so they agree by an all-reduce, only every --log_interval steps to
    keep the loop free of per-step host syncs.
    """
    if not info.enabled:
        return stop.requested
    if step % cfg.log_interval:
        return False
    return any_rank(torch.tensor(stop.requested, device=device), info)


def log_scalars(writer: SummaryWriter, values: dict[str, float], lr_g: float, step: int) -> None:
    """Training losses (averaged over ranks) and the generator's learning rate to tensorboard."""
    for k, v in values.items():
        writer.add_scalar(f"train/{k}", v, step)
    writer.add_scalar("train/lr_g", lr_g, step)


def log_images(writer: SummaryWriter, nets: Nets, clip: torch.Tensor, device: torch.device, step: int) -> None:
    """A few target / prediction / error images of the last batch, on [0, 1]."""
    with torch.no_grad():
        inputs, target = split_clip(clip[:4], device)
        pred = nets.g(inputs)
    writer.add_images("val/target", (target + 1) / 2, step)
    writer.add_images("val/prediction", (pred + 1) / 2, step)
    writer.add_images("val/error", ((pred - target).abs() / 2).mean(1, keepdim=True), step)


if __name__ == "__main__":
    sys.exit(run_cli(main))
