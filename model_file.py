"""A trained model file, ready to score: a PyTorch checkpoint or an ONNX model (the `--trained_model` of detect.py
and eval.py).

    predictor, info = load_model(args)       # inference.runtime.Predictor, ModelInfo

A file ending in .onnx (written by `export.py --format onnx`) runs on ONNX Runtime and never imports torch; any
other file is a checkpoint written by train.py or export.py, run by PyTorch.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from config_flags import command_config
from inference.runtime import ModelInfo, Predictor, flownet_name
from utils.provenance import run_environment
from utils.threads import thread_count

# torch is imported only for a PyTorch checkpoint (`load_model`): with an ONNX model, detection runs on ONNX Runtime,
# OpenCV and NumPy, and works where torch is not installed.


def load_model(args: argparse.Namespace) -> tuple[Predictor, ModelInfo]:
    """The --trained_model ready to score, with this machine's settings (--device, --threads, --batch_size):
    an ONNX file (`.onnx`, written by `export.py --format onnx`) runs on ONNX Runtime without importing torch;
    anything else is a checkpoint (train.py or export.py) run by PyTorch. FFPError naming the file when it cannot
    be read."""
    path = Path(args.trained_model)
    if path.suffix.lower() == ".onnx":
        from inference.onnx_model import load_onnx_model

        threads, line = thread_count(args.threads or 0, "ONNX Runtime")
        if line:
            print(line, flush=True)
        predictor, info = load_onnx_model(path, threads, args.device)
        cfg = replace(command_config(info.trained, args), device=predictor.device, threads=threads)
        return predictor, replace(info, cfg=cfg)
    from checkpoint import checkpoint_config, load_checkpoint, model_fps
    from inference.predict import TorchPredictor, generator_from_state
    from utils.devices import set_up_machine

    state = load_checkpoint(path)
    trained = checkpoint_config(state)
    cfg, device = set_up_machine(command_config(trained, args))  # the model's settings and this machine's
    fps, fps_origin = model_fps(state)
    info = ModelInfo(
        path=path,
        trained=trained,
        cfg=cfg,
        step=state.get("step"),
        psnr_stats=state.get("psnr_stats"),
        fps=fps,
        fps_origin=fps_origin,
        selected_with_test_labels=bool(state.get("selected_with_test_labels", False)),
        flownet=flownet_name(state.get("flownet")),
        state=state,
        train_seconds=state.get("train_seconds"),
    )
    generator = generator_from_state(state, cfg, device, f"checkpoint {path}")
    return TorchPredictor(generator, cfg.in_frames, device), info


def environment(predictor: Predictor, date_label: str = "scored") -> dict[str, str]:
    """The report header's rows on what scored: date, commit, runtime and its version, device."""
    runtime = None if predictor.runtime[0] == "torch" else predictor.runtime
    return run_environment(predictor.device, date_label, runtime)
