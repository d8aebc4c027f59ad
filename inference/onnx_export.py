"""Writing a trained generator as an ONNX file for deployment (`export.py --format onnx`).

The exported graph is `ScoringGraph`: uint8 windows in, the predicted frame, its PSNR and its error map out. Its
scaling (`dataset.to_network_range`), PSNR (`evaluation.scores.psnr_per_frame`) and error map
(`evaluation.scores.error_map`) are the functions PyTorch evaluation runs, traced into the graph, so ONNX Runtime
cannot pre- or post-process differently (`inference.onnx_model` reads the file). Needs `onnx` and `onnxscript`
(torch's dynamo-based exporter) besides torch.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from pathlib import Path

import torch
from torch import nn

from config import DEFAULT_THRESHOLD, Config
from dataset import to_network_range
from errors import FFPError
from evaluation.scores import error_map, psnr_per_frame
from inference.onnx_model import CHANNEL_ORDER, INPUT, METADATA, METADATA_FORMAT, OUTPUTS, VALUE_RANGE
from utils.files import atomic_write_bytes

OPSET = 18  # the dynamo exporter's default opset in torch 2.14; ONNX Runtime ≥ 1.16 runs it


class ScoringGraph(nn.Module):
    """generator + the scoring around it, as one graph: windows -> (prediction, psnr, error_map).

    windows: B×(T+1)×H×W×3 uint8 RGB (T past frames oldest first, then the target; `dataset.prepare_frame`'s
    output stacked). Returns prediction B×3×H×W float32 in [-1, 1], psnr (B,) float32 dB, error_map B×H×W float32
    in [0, 1] (the same values as inference.predict's WindowPrediction).
    """

    def __init__(self, generator: nn.Module, in_frames: int):
        super().__init__()
        self.generator, self.in_frames = generator, in_frames

    def forward(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        frames = to_network_range(windows).permute(0, 1, 4, 2, 3)  # B×(T+1)×3×H×W in [-1, 1]
        inputs = frames[:, : self.in_frames].flatten(1, 2)  # B×3T×H×W, oldest frame first (as iter_predictions)
        target = frames[:, self.in_frames]
        prediction = self.generator(inputs)
        return prediction, psnr_per_frame(prediction, target), error_map(prediction, target)


def onnx_metadata(
    shipped: dict, cfg: Config, fps: float | None, fps_origin: str, selected_with_test_labels: bool
) -> dict[str, str]:
    """The 'ffp.*' metadata (inference.onnx_model.METADATA, every key) of a shipped checkpoint dict
    (export.generator_only); fps_origin is said of the checkpoint and restated for the ONNX file."""
    values = {
        "ffp.format": METADATA_FORMAT,
        "ffp.config": json.dumps(cfg.to_dict()),
        "ffp.height": str(cfg.height),
        "ffp.width": str(cfg.width),
        "ffp.in_frames": str(cfg.in_frames),
        "ffp.channel_order": CHANNEL_ORDER,
        "ffp.value_range": VALUE_RANGE,
        "ffp.fps": json.dumps(fps),
        "ffp.fps_origin": f"exported from a checkpoint: {fps_origin}",
        "ffp.psnr_stats": json.dumps(shipped.get("psnr_stats")),
        "ffp.default_threshold": json.dumps(DEFAULT_THRESHOLD),
        "ffp.step": json.dumps(shipped.get("step")),
        "ffp.flownet": json.dumps(shipped.get("flownet")),
        "ffp.selected_with_test_labels": json.dumps(selected_with_test_labels),
        "ffp.train_seconds": json.dumps(shipped.get("train_seconds")),
    }
    assert set(values) == set(METADATA)
    return values


def export_onnx(generator: nn.Module, cfg: Config, path: Path, metadata: dict[str, str]) -> None:
    """Write `generator` (in eval mode, on CPU) as ScoringGraph to `path`, batch dimension dynamic, with `metadata`,
    checked with onnx.checker. Uses torch's dynamo-based exporter (torch.export), the maintained one; FFPError
    when onnx/onnxscript are missing or the exporter fails."""
    try:
        import onnx
        import onnxscript  # noqa: F401  (the dynamo exporter needs it; checked here for a clear message)
    except ImportError as exc:
        raise FFPError(
            f"--format onnx needs the onnx and onnxscript packages ({exc}): pip install onnx onnxscript"
        ) from None
    graph = ScoringGraph(generator.cpu().eval(), cfg.in_frames).eval()
    example = torch.zeros((2, cfg.in_frames + 1, cfg.height, cfg.width, 3), dtype=torch.uint8)
    batch = torch.export.Dim("batch")
    quiet = io.StringIO()
    # The exporter prints its progress and logs warnings about torchvision ops it skips: not the user's concern.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            program = torch.onnx.export(
                graph,
                (example,),
                dynamo=True,
                input_names=[INPUT],
                output_names=list(OUTPUTS),
                dynamic_shapes={"windows": {0: batch}},
                opset_version=OPSET,
                external_data=False,
            )
    except Exception as exc:
        raise FFPError(f"ONNX export failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}") from None
    if program is None:  # only when exporting to a path; we export to memory
        raise FFPError("ONNX export returned no program")
    model = program.model_proto
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise FFPError(f"the exported ONNX model fails onnx.checker: {str(exc).splitlines()[0][:300]}") from None
    atomic_write_bytes(path, model.SerializeToString())
