"""Turn a training checkpoint into a small generator-only file to ship or share, or into an ONNX model.

    python export.py weights/ped2_latest.pth weights/ped2_cpu.pth       # generator-only checkpoint for PyTorch
    python export.py weights/ped2_cpu.pth ped2.onnx                     # ONNX model for ONNX Runtime, no torch needed
    python export.py weights/ped2_latest.pth ped2.onnx --data_root /mnt/data     # its training data moved

The .pth keeps what evaluation and detection need — the generator's weights, the config, the step, the
training-data PSNR statistics used by `detect.py --mode stream`, the validation history, the flow estimator's
name, the training wall time and whether the checkpoint was selected with test labels — and drops the
discriminator, optimizer, scheduler and RNG states (a fraction of the size; it cannot be resumed).
The .onnx file (--format onnx, implied by the name) holds one graph, uint8 frame windows in, predicted frame, PSNR
and error map out, checked with ONNX's checker, with the same facts as 'ffp.*' metadata; `detect.py
--trained_model model.onnx` runs it on ONNX Runtime. A checkpoint saved without the PSNR statistics (a run stopped
before its end) gets them computed from its training data (--data_root if it moved; --device, --threads).
The ONNX file and its use: docs/deployment.md.
"""

from __future__ import annotations

import argparse

from cli import ArgumentParser, answer_flags_first, run_cli
from config_flags import add_config_flags, check_flag_values, statistics_default_text
from errors import FFPError

FORMATS = ("pth", "onnx")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="training checkpoint written by train.py (e.g. weights/ped2_latest.pth)")
    parser.add_argument("output", help="file to write (e.g. weights/ped2_cpu.pth, or ped2.onnx)")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="pth: generator-only checkpoint for PyTorch; onnx: ONNX model for ONNX Runtime "
        "(default: onnx when OUTPUT ends in .onnx, else pth)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    add_config_flags(
        parser, ("data", "machine"), only=("data_root", "device", "threads"), defaults=statistics_default_text
    )
    args = parser.parse_args(argv)
    check_flag_values(args)
    onnx_name = args.output.lower().endswith(".onnx")
    if args.format is None:
        args.format = "onnx" if onnx_name else "pth"
    if (args.format == "onnx") != onnx_name:
        raise FFPError(
            f"OUTPUT {args.output} with --format {args.format}: ONNX files must end in .onnx and other files must not "
            "(detect.py and eval.py tell the two kinds apart by it)"
        )
    return args


if __name__ == "__main__":
    answer_flags_first(parse_args)  # --help and flag errors answer before torch is imported (seconds)

# The heavy imports, after the flags are known to be good (style checkers: E402 is intended here).
from pathlib import Path

from checkpoint import checkpoint_config, load_checkpoint, model_fps, save_checkpoint
from config_flags import command_config
from inference.predict import generator_from_state, psnr_stats_from_training_data
from utils.devices import set_up_machine

KEPT = (
    "format_version",
    "net_g",
    "config",
    "step",
    "psnr_stats",
    "history",
    "flownet",
    "selected_with_test_labels",
    "train_seconds",
    "fps",
    "fps_origin",
)


def generator_only(state: dict, source: Path, args: argparse.Namespace | None = None) -> dict:
    """The shipped subset of a training checkpoint dict, with training PSNR statistics (computed when absent, on
    the machine settings of export.py's flags `args`: --data_root, --device, --threads)."""
    if "psnr_stats" not in state:
        args = args or argparse.Namespace()
        cfg, device = set_up_machine(command_config(checkpoint_config(state), args))
        stats = psnr_stats_from_training_data(
            state, cfg, getattr(args, "data_root", None), device, f"checkpoint {source}"
        )
        state = {**state, "psnr_stats": stats}
        print(
            f"computed the training PSNR statistics ({state['psnr_stats']['n']} windows of "
            f"{state['psnr_stats']['computed_from']}): {source} was saved before the end of its run"
        )
    return {k: state[k] for k in KEPT if k in state}


def write_onnx(shipped: dict, source: Path, output: Path) -> None:
    """The shipped checkpoint dict as an ONNX model with its metadata (inference.onnx_export), on the CPU."""
    import torch

    from inference.onnx_export import export_onnx, onnx_metadata

    cfg = checkpoint_config(shipped)
    fps, fps_origin = model_fps(shipped)
    generator = generator_from_state(shipped, cfg, torch.device("cpu"), f"checkpoint {source}")
    export_onnx(
        generator,
        cfg,
        output,
        onnx_metadata(shipped, cfg, fps, fps_origin, bool(shipped.get("selected_with_test_labels", False))),
    )


def write_pth(shipped: dict, source: Path, output: Path) -> None:
    """The shipped checkpoint dict as a .pth file that eval.py, detect.py and train.py --init_from read: its generator
    is built strictly first (FFPError when the weights do not fit the config, nothing written), and the written
    file is read back with the same loader (removed, FFPError, when it does not load)."""
    import torch

    generator_from_state(shipped, checkpoint_config(shipped), torch.device("cpu"), f"checkpoint {source}")
    save_checkpoint(output, shipped)
    try:
        written = load_checkpoint(output)
        generator_from_state(written, checkpoint_config(written), torch.device("cpu"), f"checkpoint {output}")
    except FFPError as exc:
        output.unlink(missing_ok=True)
        raise FFPError(f"export.py wrote {output} but it does not load back, so it was removed: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    source, output = Path(args.checkpoint), Path(args.output)
    if output.exists() and not args.overwrite:
        raise FFPError(f"output {output} exists; pass --overwrite to replace it")
    shipped = generator_only(load_checkpoint(source), source, args)
    if args.format == "onnx":
        write_onnx(shipped, source, output)
    else:
        write_pth(shipped, source, output)
    size_mb = output.stat().st_size / 2**20
    selected = (
        "SELECTED WITH TEST LABELS" if shipped.get("selected_with_test_labels") else "not selected with test labels"
    )
    print(f"wrote {output} ({size_mb:.1f} MiB; step {shipped['step']}; {selected})")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
