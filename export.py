"""Turn a training checkpoint into a small generator-only file to ship or share.

    python export.py weights/ped2_latest.pth weights/ped2_cpu.pth

A checkpoint saved without the streaming statistics (a run stopped before its end) gets them computed now
from its training data (--data_root if it moved). Keeps what evaluation and detection need — the generator's weights, the config, the step, the training-data
PSNR statistics used by `detect.py --mode stream`, the validation history, the flow estimator's name, the
training wall time and whether the checkpoint was selected with test labels — and drops the discriminator,
optimizer, scheduler and RNG states (a shipped file cannot be resumed; it is a fraction of the size).
"""
from __future__ import annotations

import argparse

from cli import ArgumentParser, answer_flags_first, run_cli


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="training checkpoint written by train.py (e.g. weights/ped2_latest.pth)")
    parser.add_argument("output", help="generator-only file to write (e.g. weights/ped2_cpu.pth)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    parser.add_argument("--data_root", default=None, help="where the training data is, when the checkpoint lacks "
                                                          "PSNR statistics and its config's data_root moved")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    return parser.parse_args(argv)


if __name__ == "__main__":
    answer_flags_first(parse_args)   # --help and flag errors answer before torch is imported (seconds)

# The heavy imports, after the flags are known to be good (style checkers: E402 is intended here).
from pathlib import Path

from config import command_config
from evaluation.predict import psnr_stats_from_training_data
from checkpoint import load_checkpoint, save_checkpoint
from training.resume import checkpoint_config
from utils import FFPError, resolve_device

KEPT = ("net_g", "config", "step", "psnr_stats", "history", "flownet", "selected_with_test_labels",
        "train_seconds")


def generator_only(state: dict, source: Path, data_root: str | None = None) -> dict:
    """The shipped subset of a training checkpoint dict, with training PSNR statistics (computed when absent)."""
    if "psnr_stats" not in state:
        cfg = command_config(checkpoint_config(state), argparse.Namespace(data_root=data_root))
        state = {**state, "psnr_stats": psnr_stats_from_training_data(state, cfg, data_root, resolve_device("auto"),
                                                                      f"checkpoint {source}")}
        print(f"computed the training PSNR statistics ({state['psnr_stats']['n']} windows of "
              f"{state['psnr_stats']['computed_from']}): {source} was saved before the end of its run")
    return {k: state[k] for k in KEPT if k in state}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    source, output = Path(args.checkpoint), Path(args.output)
    if output.exists() and not args.overwrite:
        raise FFPError(f"output {output} exists; pass --overwrite to replace it")
    shipped = generator_only(load_checkpoint(source), source, args.data_root)
    save_checkpoint(output, shipped)
    size_mb = output.stat().st_size / 2**20
    print(f"wrote {output} ({size_mb:.1f} MiB; step {shipped['step']}; "
          f"{'SELECTED WITH TEST LABELS' if shipped.get('selected_with_test_labels') else 'not selected with test labels'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
