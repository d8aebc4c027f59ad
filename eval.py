"""Evaluate a trained FFP generator on a dataset's test videos with the paper's protocol.

    python eval.py --trained_model weights/ped2_latest.pth --data_root ../shared/data

Protocol (the headline number): PSNR of every predicted frame on [0, 1] frames, min-max normalised within
each test video, score = 1 − normalised PSNR, the first 4 frames of each video dropped, all videos
concatenated, one ROC-AUC with abnormal = positive ("micro-AUC"). Other metrics are labelled as such.
Writes results/<dataset>_<checkpoint-name>/ (scores.csv, metrics.json, roc.png, curves/, index.html).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from cli import run_cli
from config import Config, add_config_flags, config_from_namespace
from dataset import prepare_dataset
from evaluation.metrics import compute_metrics, format_metrics_table
from evaluation.predict import score_videos
from evaluation.report import write_report
from model import Generator
from training.checkpoint import load_checkpoint, load_state_strict
from utils import resolve_device


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trained_model", required=True, help="checkpoint (.pth) written by train.py")
    parser.add_argument("--out_dir", default="results", help="parent folder of the run's result folder")
    parser.add_argument("--overwrite", action="store_true", help="reuse an existing result folder")
    parser.add_argument("--smooth_sigma", type=float, default=0.0,
                        help="temporal Gaussian smoothing of scores (frames; 0 = none, the paper)")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    add_config_flags(parser)   # e.g. --data_root, --device, --eval_batch_size, --num_workers
    return parser.parse_args(argv)


def load_generator(path: str | Path, cfg: Config, device: torch.device) -> tuple[Generator, dict]:
    """Generator from a checkpoint (architecture from the checkpoint's config), in eval mode on `device`."""
    state = load_checkpoint(path)
    g = Generator(cfg.in_frames, cfg.g_widths)
    load_state_strict(g, state["net_g"], f"checkpoint {path}")
    return g.to(device).eval(), state


def result_dir(out_root: Path, cfg: Config, checkpoint: Path, overwrite: bool) -> Path:
    """results/<dataset>_<checkpoint stem>, or a numbered sibling so earlier results are never overwritten."""
    base = out_root / f"{cfg.dataset}_{checkpoint.stem}"
    if overwrite or not base.exists():
        return base
    n = 2
    while (out_root / f"{base.name}_{n}").exists():
        n += 1
    return out_root / f"{base.name}_{n}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ckpt_path = Path(args.trained_model)
    state = load_checkpoint(ckpt_path)
    cfg = config_from_namespace(args, Config.from_dict(state["config"]))
    if args.dataset:
        cfg.dataset = args.dataset
    device = resolve_device(cfg.device)
    generator, _ = load_generator(ckpt_path, cfg, device)
    files = prepare_dataset(cfg)

    psnr = score_videos(generator, files.test, cfg, device)
    labels = {v.name: v.labels[cfg.in_frames:] for v in files.test}
    metrics = compute_metrics(psnr, labels, smooth_sigma=args.smooth_sigma)
    selected = ckpt_path.stem.endswith("_best")
    knobs = {"checkpoint": ckpt_path.name, "selected_with_test_labels": selected,
             "dropped_frames": cfg.in_frames, "smooth_sigma": args.smooth_sigma}
    out = result_dir(Path(args.out_dir), cfg, ckpt_path, args.overwrite)
    meta = {**knobs, "config": cfg.to_dict(), "checkpoint_path": str(ckpt_path), "step": state.get("step"),
            "dataset": cfg.dataset}
    write_report(out, psnr, labels, metrics, meta)
    print(format_metrics_table(metrics, knobs))
    print(f"scored {metrics['n_frames']} frames of {len(files.test)} test videos; results in {out}")
    print(f"micro-AUC: {metrics['micro_auc']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
