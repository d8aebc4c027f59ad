"""Train FFP: a U-Net predicts frame t+1 from frames t-3..t; intensity, gradient, flow and adversarial losses.

    python train.py --dataset ped2 --data_root ../shared/data
    python train.py --dataset ped2 --resume latest          # or --resume weights/ped2_latest.pth
    python train.py --dataset mycam --init_from weights/ped2_cpu.pth   # fine-tune on other data
    torchrun --nproc_per_node=4 train.py --dataset ped2 ...  # DDP: 4 GPUs (NCCL), or 4 CPU processes (gloo)

Under torchrun --batch_size is per process (global batch N × batch_size); each rank trains on its own
shard of every epoch's window order; rank 0 alone logs, validates and saves, and checkpoints hold the
plain modules' weights, so they resume and evaluate in single- or multi-process runs alike.
Speed: --channels_last (auto: on), --amp [--amp_dtype fp16] (bf16 autocast; fp16 + GradScaler on CUDA),
--compile (torch.compile of G and D), --threads; measurements in bench/README.md.

Writes weights/<dataset>_latest.pth every --save_interval steps and weights/<dataset>_best.pth at the best
validation AUC. "best" is selected WITH TEST LABELS (the test set is the only labelled set these benchmarks
have); "latest" is not, and is what honest results should report. Without usable test labels (none, or
one class only) training runs the same, without validation and without "best".
"""
from __future__ import annotations

import argparse

from cli import ArgumentParser, answer_flags_first, run_cli
from config import (CLASSICAL_LAMBDA_OP, DATASET_DEFAULTS, FLAG_GROUPS, Config, add_config_flags,
                    check_flag_values, config_from_namespace)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_flags(parser, tuple(FLAG_GROUPS))
    parser.add_argument("--resume", default=None, help="continue a run: checkpoint path, or 'latest' for "
                                                       "<weights_dir>/<dataset>_latest.pth")
    parser.add_argument("--init_from", default=None, help="start a NEW run from a checkpoint's weights (fresh "
                                                          "optimizers, step 0; any dataset)")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    args = parser.parse_args(argv)
    check_flag_values(args)   # each value on its own; combinations once the run's whole config is known
    return args


if __name__ == "__main__":
    answer_flags_first(parse_args)   # --help and flag errors answer before torch is imported (seconds)

# The heavy imports, after the flags are known to be good (style checkers: E402 is intended here).
import dataclasses
import json
import signal
import sys
import time
from pathlib import Path

import torch

from dataset import TrainWindows, prepare_dataset, scored_labels, train_loader, training_videos
from evaluation.metrics import compute_metrics
from evaluation.predict import Cancelled, score_videos, training_psnr_stats
from flownet import build_flow_estimator
from model import Discriminator, Generator, init_weights
from training.checkpoint import load_checkpoint, load_state_strict, save_checkpoint
from training.distributed import (DistInfo, any_rank, barrier, init_distributed, main_first, mean_over_ranks,
                                  shutdown_distributed, wrap_ddp)
from training.losses import FLOW_LOSS_UNITS
from training.resume import (SCHEDULE, apply_schedule, checkpoint_config, data_fingerprint, init_config, resume_config,
                             trained_with_legacy_flow_scale)
from training.runlog import RunLock, RunLog, RunTraces, remove_stale_temp_files
from training.step import Nets, Precision, make_precision, split_clip, train_step, use_channels_last
from utils import FFPError, Progress, atomic_write_text, check_writable, configure_threads, seed_everything


@dataclasses.dataclass
class Start:
    """How this run starts: its config, and the checkpoint it resumes or initialises from (if any)."""
    cfg: Config
    resume: dict | None = None
    init: dict | None = None
    source: str = ""                       # path of that checkpoint
    changes: list[str] = dataclasses.field(default_factory=list)   # flags changed on resume


def resolve_start(args: argparse.Namespace) -> Start:
    """The run's config from flags, a resumed checkpoint (its data/architecture kept) or --init_from weights."""
    if args.resume and args.init_from:
        raise FFPError("--resume continues a run and --init_from starts a new one from trained weights: give one")
    if args.resume is not None:
        path = Path(args.weights_dir or "weights") / f"{args.dataset or 'synthetic'}_latest.pth" \
            if args.resume == "latest" else Path(args.resume)
        state = load_checkpoint(path)
        for key in ("net_d", "optim_g", "optim_d", "sched_g", "sched_d", "step"):
            if key not in state:
                raise FFPError(f"--resume {path}: not a training checkpoint (no '{key}'; generator-only checkpoints "
                               f"can be evaluated, or fine-tuned with --init_from)")
        cfg, changes = resume_config(args, state, str(path))
        return Start(cfg, resume=state, source=str(path), changes=changes)
    if args.init_from is not None:
        state = load_checkpoint(args.init_from)
        return Start(init_config(args, state, args.init_from), init=state, source=args.init_from)
    return Start(config_from_namespace(args))


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
    return Nets(g, d, opt_g, opt_d, flow, memory_format=memory_format)


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
    """SIGINT/SIGTERM: the first asks the loop to save and stop after the current step (a running validation
    or statistics pass is abandoned); a second exits at once."""

    def __init__(self):
        self.requested = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        if self.requested:
            raise SystemExit(128 + signum)
        self.requested = signum   # the loop says so: printing inside a signal handler can hit a half-done print


def validate_auc(nets: Nets, cfg: Config, files, device: torch.device, stop: StopRequest) -> float | None:
    """Paper-protocol micro-AUC on the test set (test labels: for monitoring and 'best' only); None when a
    stop was requested while it ran."""
    try:
        psnr = score_videos(nets.g, files.test, cfg, device, cancel=lambda: stop.requested)
    except Cancelled:
        return None
    finally:
        nets.g.train()
    return compute_metrics(psnr, scored_labels(files.test, cfg.in_frames))["micro_auc"]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = resolve_start(args)
    warning = configure_threads(start.cfg.threads)
    info, device = init_distributed(start.cfg.device)
    try:
        if warning and info.is_main:
            print(warning, flush=True)
        return train(start, info, device)
    finally:
        shutdown_distributed()


def train(start: Start, info: DistInfo, device: torch.device) -> int:
    """The training loop; under torchrun one copy per rank, rank 0 alone logs, validates and saves."""
    cfg, resume = start.cfg, start.resume
    process_start = time.time()
    prior_seconds = float(resume.get("train_seconds", 0.0)) if resume else 0.0
    weights_dir, run_dir = Path(cfg.weights_dir), Path(cfg.log_dir) / f"{cfg.dataset}"
    precision = make_precision(cfg, device)   # before any slow set-up: an impossible --amp_dtype fails at once
    lock, traces, failed = None, RunTraces([weights_dir, run_dir], run_dir) if info.is_main else None, True
    try:
        if info.is_main:
            check_writable(weights_dir, "--weights_dir")
            check_writable(run_dir, "--log_dir")
            lock = RunLock([weights_dir, run_dir], cfg.dataset).acquire()
            traces.snapshot()
            for path in remove_stale_temp_files(weights_dir, cfg.dataset):
                print(f"removed {path}, a temp file left by a run killed while saving", flush=True)
        result = _train(start, cfg, resume, info, device, precision, weights_dir, run_dir, process_start,
                        prior_seconds, traces)
        failed = False
        return result
    finally:
        if failed and traces is not None and not traces.trained and lock is not None:
            traces.remove_files()   # failed before step 1; only while holding the lock
        if lock is not None:
            lock.release()
        if failed and traces is not None:
            traces.remove_folders()   # the folders it created, if now empty: no empty run folders left behind


def _train(start: Start, cfg: Config, resume: dict | None, info: DistInfo, device: torch.device,
           precision: Precision, weights_dir: Path, run_dir: Path, process_start: float, prior_seconds: float,
           traces: RunTraces | None) -> int:
    seed_everything(cfg.seed)   # the same seed on every rank: identical initial weights
    with main_first(info):      # rank 0 generates the synthetic data once; the others then read it
        files = prepare_dataset(cfg)
    skip_validation = files.why_no_auc(cfg.in_frames)
    videos = training_videos(files, cfg)
    windows = TrainWindows(videos, cfg)            # decodes the training frames: every check runs before step 1
    fingerprint = data_fingerprint(videos, windows.store.lengths)
    if resume and resume.get("data_fingerprint", fingerprint) != fingerprint:
        raise FFPError(f"--resume {start.source}: the training data under --data_root {cfg.data_root} differs from "
                       f"the data this run trained on ({len(videos)} videos, {sum(windows.store.lengths)} frames now); "
                       f"resume with the original data, or fine-tune with --init_from {start.source}")
    nets = build_nets(cfg, device)
    sched_g = torch.optim.lr_scheduler.MultiStepLR(nets.opt_g, list(cfg.lr_drop_steps), cfg.lr_gamma)
    sched_d = torch.optim.lr_scheduler.MultiStepLR(nets.opt_d, list(cfg.lr_drop_steps), cfg.lr_gamma)
    step, history = 0, []
    if resume:
        step, history = restore(resume, nets, sched_g, sched_d)
        if any(change.split(":")[0] in SCHEDULE for change in start.changes):
            apply_schedule(cfg, [nets.opt_g, nets.opt_d], [sched_g, sched_d])
    elif start.init:
        initialise(start.init, nets, start.source)
    best_auc = max([h["val_auc"] for h in history if h.get("val_auc") is not None], default=None)
    if info.enabled:  # per-rank random streams (e.g. DataLoader worker seeds); the data order is the sampler's
        torch.manual_seed(cfg.seed + 1_000_003 * info.rank + step)
    nets = accelerate(nets, cfg, device, info, precision)
    flow_name = type(nets.flow).__name__ if nets.flow is not None else "none"

    log = None
    if info.is_main:
        print_start(cfg, files, windows, start, step, flow_name, device, info, skip_validation)
        atomic_write_text(run_dir / "config.json", json.dumps(cfg.to_dict(), indent=2))
        # The checkpoint holds everything logged up to its step; a killed run's later events are dropped.
        log = RunLog(run_dir, purge_step=step + 1 if resume else None)

    last_saved = step if resume else None   # step of the newest 'latest' on disk written by this run
    latest = weights_dir / f"{cfg.dataset}_latest.pth"

    def checkpoint(kind: str, final: bool = False) -> None:
        """Rank 0 only. The plain modules' weights: interchangeable between DDP and single-process runs.

        The final save of a completed run also stores PSNR statistics of the training predictions, which
        `detect.py --mode stream` uses to normalise an unlabelled stream (only then: it costs up to 500
        forward passes, too slow for a signal-stop; detect.py computes them when a checkpoint lacks them).
        """
        nonlocal last_saved
        state = {"net_g": nets.g.state_dict(), "net_d": nets.d.state_dict(),
                 "optim_g": nets.opt_g.state_dict(), "optim_d": nets.opt_d.state_dict(),
                 "sched_g": sched_g.state_dict(), "sched_d": sched_d.state_dict(), "step": step,
                 "config": cfg.to_dict(), "rng": {"torch": torch.get_rng_state()}, "history": history,
                 "flownet": {"name": flow_name, "checkpoint": cfg.flownet_ckpt, "loss_units": FLOW_LOSS_UNITS},
                 "selected_with_test_labels": kind == "best", "data_fingerprint": fingerprint,
                 # wall-clock seconds of all sessions of this run so far (setup, validation and saves included)
                 "train_seconds": prior_seconds + time.time() - process_start}
        if start.init:
            state["init_from"] = start.source
        if final:
            try:
                state["psnr_stats"] = training_psnr_stats(nets.g, videos, cfg, device, max_windows=500,
                                                          cancel=lambda: stop.requested)
            except Cancelled:
                pass
        save_checkpoint(weights_dir / f"{cfg.dataset}_{kind}.pth", state)
        log.flush()
        if kind == "latest":
            last_saved = step

    stop = StopRequest()
    nets.g.train()
    nets.d.train()
    bad = torch.zeros((), dtype=torch.bool, device=device)   # any non-finite loss since the last sync
    progress = Progress(cfg.iters, "train", unit="step", initial=step, every=cfg.log_interval, enabled=info.is_main)
    started, first_step, stopped = time.time(), step, False
    for clip in train_loader(windows, cfg, step, info.rank, info.world_size):
        stopped = should_stop(stop, step, cfg, info, device)
        if step >= cfg.iters or stopped:
            if stopped and info.is_main:
                progress.write(f"signal {int(stop.requested)}: saving a checkpoint at step {step}, then stopping "
                               f"(send again to exit at once)")
            break
        parts = train_step(nets, cfg, clip, device)
        bad |= ~torch.isfinite(parts["g_total"])
        sched_g.step()
        sched_d.step()
        step += 1
        if traces is not None:
            traces.trained = True
        at_end = step == cfg.iters
        if step % cfg.log_interval == 0 or at_end or step % cfg.save_interval == 0:
            if any_rank(bad, info):  # one host sync per logging/saving step, never per iteration
                kept = (f"the last good checkpoint {latest} (step {last_saved}) is kept" if last_saved is not None
                        else "no checkpoint was saved yet by this run")
                raise FFPError(f"non-finite loss at or before step {step}: training stopped; {kept} "
                               f"(lower the learning rate, e.g. --resume latest --lr_g {cfg.lr_g / 10:g})")
            values = mean_over_ranks(parts, info)
            if log is not None:
                for k, v in values.items():
                    log.scalar(f"train/{k}", v, step)
                log.scalar("train/lr_g", sched_g.get_last_lr()[0], step)
                progress.set_postfix({k: f"{values[k]:.4g}" for k in ("g_total", "int", "psnr") if k in values})
        progress.update(1)
        validate_now = step % cfg.val_interval == 0 or at_end
        save_now = step % cfg.save_interval == 0 or at_end
        if info.is_main and validate_now and skip_validation is None:
            auc = validate_auc(nets, cfg, files, device, stop)
            if auc is not None:
                log.scalar("val/micro_auc", auc, step)
                log_images(log, nets, clip, device, step)
                progress.write(f"step {step}: validation micro-AUC {auc:.4f} (test labels; used only to pick 'best')")
                history.append({"step": step, "val_auc": auc})
                if best_auc is None or auc > best_auc:
                    best_auc = auc
                    checkpoint("best")
        if info.is_main and save_now:
            checkpoint("latest", final=at_end)
        if validate_now or save_now:
            barrier(info)   # the other ranks wait for rank 0's validation and files
    if stopped and step < cfg.iters:
        if info.is_main:
            if last_saved != step:   # a stop right after a regular save has nothing new to write
                checkpoint("latest")
            print(f"stopped at step {step}; resume with --resume latest", flush=True)
        barrier(info)
    progress.close()
    if log is not None:
        log.close()
        best = (f"best by test-label AUC {best_auc:.4f}: {weights_dir / (cfg.dataset + '_best.pth')}"
                if best_auc is not None else "no validation ran, so no 'best' checkpoint")
        print(f"trained steps {first_step}..{step} in {time.time() - started:.0f}s; latest: {latest} ({best})")
    return 0


def print_start(cfg: Config, files, windows: TrainWindows, start: Start, step: int, flow_name: str,
                device: torch.device, info: DistInfo, skip_validation: str | None) -> None:
    """The start-up printout: data, device, how the run starts, changes on resume, warnings, the config."""
    where = (f"resuming at step {step} from {start.source}" if start.resume else
             f"from the weights of {start.source} (new run, step 0)" if start.init else "from scratch")
    ddp = f" ×{info.world_size} processes (batch {cfg.batch_size} each)" if info.enabled else ""
    lines = [f"FFP training on {cfg.dataset} ({len(files.train)} videos, {len(windows)} windows, layout "
             f"{files.layout}), device {device}{ddp}, {torch.get_num_threads()} CPU threads, flow estimator "
             f"{flow_name}, {where}"]
    lines += [f"resume: {change} (applied)" for change in start.changes]
    lines += flow_weight_notes(cfg, flow_name, start)
    lines += [f"warning: {problem} (trained on the frames that decoded)" for problem in windows.decode_problems()]
    lines += [f"labels: {note}" for note in files.notes.lines]
    if skip_validation:
        lines.append(f"warning: validation AUC skipped ({skip_validation}); training runs without it: "
                     f"'latest' is saved, 'best' is not")
    elif files.label_source:
        lines.append(f"labels: {files.label_source}")
    print("\n".join(lines) + "\n" + cfg.pretty(), flush=True)


def flow_weight_notes(cfg: Config, flow_name: str, start: Start) -> list[str]:
    """Start-up notes on λ_op: an estimator meeting the other one's weight, and --init_from weights trained with
    the legacy 1/400 flow scale (README "Optical flow")."""
    notes = []
    if flow_name == "ClassicalFlow" and cfg.lambda_op > CLASSICAL_LAMBDA_OP:
        notes.append(f"note: λ_op {cfg.lambda_op} with the classical flow estimator: the official values were tuned "
                     f"for FlowNet-SD; on Ped2 with this estimator λ_op 2 and 0.1 scored below {CLASSICAL_LAMBDA_OP} "
                     f"(the --preset cpu value; README 'Optical flow')")
    if flow_name == "FlowNet2SDFlow" and 0 < cfg.lambda_op <= CLASSICAL_LAMBDA_OP:
        notes.append(f"note: λ_op {cfg.lambda_op} is the classical estimator's weight; the official value for "
                     f"FlowNet-SD is {DATASET_DEFAULTS['ped2']['lambda_op']} (Ped2)")
    if start.init and trained_with_legacy_flow_scale(start.init):
        notes.append(f"note: {start.source} was trained before 2026-11-30 with the classical estimator's motion loss "
                     f"scaled by 1/400: its λ_op {start.init['config']['lambda_op']} was "
                     f"{checkpoint_config(start.init).lambda_op} in today's pixel units; this run uses "
                     f"λ_op {cfg.lambda_op}")
    return notes


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


def initialise(state: dict, nets: Nets, source: str) -> None:
    """--init_from: the checkpoint's generator weights, and its discriminator's when it has one; nothing else."""
    load_state_strict(nets.g, state["net_g"], f"--init_from {source} generator")
    if "net_d" in state:
        load_state_strict(nets.d, state["net_d"], f"--init_from {source} discriminator")


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


def log_images(log: RunLog, nets: Nets, clip: torch.Tensor, device: torch.device, step: int) -> None:
    """A few target / prediction / error images of the last batch, on [0, 1]."""
    with torch.no_grad():
        inputs, target = split_clip(clip[:4], device)
        pred = nets.g(inputs).float()
    log.images("val/target", ((target + 1) / 2).cpu().numpy(), step)
    log.images("val/prediction", ((pred + 1) / 2).clamp(0, 1).cpu().numpy(), step)
    log.images("val/error", ((pred - target).abs() / 2).mean(1, keepdim=True).clamp(0, 1).cpu().numpy(), step)


if __name__ == "__main__":
    sys.exit(run_cli(main))
