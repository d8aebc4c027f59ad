"""Train FFP: a U-Net predicts frame t+1 from frames t-3..t; intensity, gradient, flow and adversarial losses.

    python train.py --dataset ped2 --data_root ../shared/data
    python train.py --dataset ped2 --resume latest          # or --resume weights/ped2_latest.pth

Writes weights/<dataset>_latest.pth every --save_interval steps and weights/<dataset>_best.pth at the best
validation AUC. "best" is selected WITH TEST LABELS (the test set is the only labelled set these benchmarks
have); "latest" is not, and is what honest results should report.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

import torch
from tensorboardX import SummaryWriter
from tqdm import tqdm

from cli import run_cli
from config import Config, add_config_flags, config_from_namespace
from dataset import TrainWindows, prepare_dataset, train_loader
from evaluation.metrics import compute_metrics
from evaluation.predict import score_videos
from flownet import FLOW_LOSS_SCALE, build_flow_estimator
from model import Discriminator, Generator, init_weights
from training.checkpoint import load_checkpoint, load_state_strict, save_checkpoint
from training.step import Nets, split_clip, train_step
from utils import FFPError, atomic_write_text, resolve_device, seed_everything


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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


def check_writable(folder: Path, flag: str) -> None:
    """Fail before training starts, not at the first save, when an output folder cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write_test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise FFPError(f"{flag} {folder} is not writable: {exc.strerror or exc}") from None


def build_nets(cfg: Config, device: torch.device) -> Nets:
    """Generator, discriminator (official init), Adam optimizers and the frozen flow estimator."""
    g = Generator(cfg.in_frames, cfg.g_widths)
    d = Discriminator(cfg.d_widths)
    init_weights(g)
    init_weights(d)
    g, d = g.to(device), d.to(device)
    flow, _ = build_flow_estimator(cfg.flownet, cfg.flownet_ckpt, device)
    opt_g = torch.optim.Adam(g.parameters(), lr=cfg.lr_g, betas=cfg.adam_betas)
    opt_d = torch.optim.Adam(d.parameters(), lr=cfg.lr_d, betas=cfg.adam_betas)
    return Nets(g, d, opt_g, opt_d, flow, FLOW_LOSS_SCALE)


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
    offset = cfg.in_frames
    labels = {v.name: v.labels[offset:] for v in files.test}
    return compute_metrics(psnr, labels)["micro_auc"]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    resume = resolve_resume(args)
    base = Config.from_dict(resume["config"]) if resume else None
    cfg = config_from_namespace(args, base)
    device = resolve_device(cfg.device)
    weights_dir, run_dir = Path(cfg.weights_dir), Path(cfg.log_dir) / f"{cfg.dataset}"
    check_writable(weights_dir, "--weights_dir")
    check_writable(run_dir, "--log_dir")
    seed_everything(cfg.seed)

    files = prepare_dataset(cfg)
    windows = TrainWindows(files.train, cfg)
    nets = build_nets(cfg, device)
    flow_name = type(nets.flow).__name__ if nets.flow is not None else "none"
    sched_g = torch.optim.lr_scheduler.MultiStepLR(nets.opt_g, list(cfg.lr_drop_steps), cfg.lr_gamma)
    sched_d = torch.optim.lr_scheduler.MultiStepLR(nets.opt_d, list(cfg.lr_drop_steps), cfg.lr_gamma)
    step, history, best_auc = 0, [], -1.0
    if resume:
        load_state_strict(nets.g, resume["net_g"], f"--resume generator")
        load_state_strict(nets.d, resume["net_d"], f"--resume discriminator")
        nets.opt_g.load_state_dict(resume["optim_g"])
        nets.opt_d.load_state_dict(resume["optim_d"])
        sched_g.load_state_dict(resume["sched_g"])
        sched_d.load_state_dict(resume["sched_d"])
        step, history = resume["step"], list(resume.get("history", []))
        best_auc = max([h["val_auc"] for h in history if "val_auc" in h], default=-1.0)
        torch.set_rng_state(resume["rng"]["torch"])

    print(f"FFP training on {cfg.dataset} ({len(files.train)} videos, {len(windows)} windows), device {device}, "
          f"flow estimator {flow_name}, {'resuming at step ' + str(step) if resume else 'from scratch'}\n"
          f"{cfg.pretty()}")
    atomic_write_text(run_dir / "config.json", json.dumps(cfg.to_dict(), indent=2))
    writer = SummaryWriter(str(run_dir))

    def checkpoint(kind: str) -> None:
        state = {"net_g": nets.g.state_dict(), "net_d": nets.d.state_dict(),
                 "optim_g": nets.opt_g.state_dict(), "optim_d": nets.opt_d.state_dict(),
                 "sched_g": sched_g.state_dict(), "sched_d": sched_d.state_dict(), "step": step,
                 "config": cfg.to_dict(), "rng": {"torch": torch.get_rng_state()}, "history": history,
                 "flownet": {"name": flow_name, "checkpoint": cfg.flownet_ckpt}}
        save_checkpoint(weights_dir / f"{cfg.dataset}_{kind}.pth", state)

    stop = StopRequest()
    nets.g.train()
    nets.d.train()
    bad = torch.zeros((), dtype=torch.bool, device=device)   # any non-finite loss since the last sync
    bar = tqdm(total=cfg.iters, initial=step, dynamic_ncols=True, disable=None)
    started, first_step = time.time(), step
    for clip in train_loader(windows, cfg, step):
        if step >= cfg.iters or stop.requested:
            break
        parts = train_step(nets, cfg, clip, device)
        bad |= ~torch.isfinite(parts["g_total"])
        sched_g.step()
        sched_d.step()
        step += 1
        bar.update(1)
        at_end = step == cfg.iters
        if step % cfg.log_interval == 0 or at_end or step % cfg.save_interval == 0:
            if bool(bad):  # one host sync per logging/saving step, never per iteration
                raise FFPError(f"non-finite loss at or before step {step}: training stopped; the last good "
                               f"checkpoint {weights_dir / (cfg.dataset + '_latest.pth')} is kept (try a lower --lr_g)")
            values = {k: float(v) for k, v in parts.items()}
            for k, v in values.items():
                writer.add_scalar(f"train/{k}", v, step)
            writer.add_scalar("train/lr_g", sched_g.get_last_lr()[0], step)
            bar.set_postfix({k: f"{values[k]:.4g}" for k in ("g_total", "int", "psnr") if k in values})
        if step % cfg.val_interval == 0 or at_end:
            auc = validate_auc(nets, cfg, files, device)
            history.append({"step": step, "val_auc": auc})
            writer.add_scalar("val/micro_auc", auc, step)
            log_images(writer, nets, clip, device, step)
            tqdm.write(f"step {step}: validation micro-AUC {auc:.4f} (test labels; used only to pick 'best')")
            if auc > best_auc:
                best_auc = auc
                checkpoint("best")
        if step % cfg.save_interval == 0 or at_end:
            checkpoint("latest")
    if stop.requested and step < cfg.iters:
        checkpoint("latest")
        print(f"stopped at step {step}; resume with --resume latest")
    bar.close()
    writer.close()
    elapsed = time.time() - started
    print(f"trained steps {first_step}..{step} in {elapsed:.0f}s; latest: {weights_dir / (cfg.dataset + '_latest.pth')}"
          f" (best by test-label AUC {best_auc:.4f}: {weights_dir / (cfg.dataset + '_best.pth')})")
    return 0


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
