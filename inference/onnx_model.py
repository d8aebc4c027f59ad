"""A model file for deployment: scoring frames with ONNX Runtime, without torch.

    predictor, info = load_onnx_model("ped2.onnx", threads=1)     # written by `export.py --format onnx`
    for pred in predictor.stream(predictor.batches(video, info.cfg, 16)): pred.psnr, pred.error_maps()

The file holds one graph (inference.onnx_export.ScoringGraph): uint8 windows B×(T+1)×H×W×3 RGB in, the predicted
frame, its PSNR and its error map out. The scaling to [-1, 1], the generator, the PSNR and the error map are inside
the graph, exported from the same PyTorch code that training and evaluation run; decoding and resizing before it
is `dataset.prepare_frame` in both paths. What detection needs besides the graph is in the file's metadata
(`METADATA`, 'ffp.*' keys). Besides the project's torch-free modules this imports onnxruntime and NumPy only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from config import DEFAULT_THRESHOLD, Config
from errors import FFPError

from .runtime import ModelInfo, Predictions, cpu_micro_batch, flownet_name

INPUT = "windows"  # uint8 B×(T+1)×H×W×3 RGB, values 0..255: T past frames (oldest first), then the target
OUTPUTS = ("prediction", "psnr", "error_map")  # B×3×H×W in [-1, 1]; (B,) dB; B×H×W in [0, 1]
METADATA_FORMAT = "1"
CHANNEL_ORDER = "RGB"
VALUE_RANGE = "uint8 0..255, after dataset.prepare_frame (RGB, resized to height×width)"

# The metadata keys export.py writes (all strings; JSON where the value is not text), and what each holds.
METADATA = {
    "ffp.format": "version of this metadata layout",
    "ffp.config": "JSON: the training config (config.Config.to_dict)",
    "ffp.height": "input frame height in pixels",
    "ffp.width": "input frame width in pixels",
    "ffp.in_frames": "T: past frames per window (the input holds T + 1 frames)",
    "ffp.channel_order": CHANNEL_ORDER,
    "ffp.value_range": VALUE_RANGE,
    "ffp.fps": "JSON: the training footage's frame rate in frames/s, or null when unknown",
    "ffp.fps_origin": "where ffp.fps comes from",
    "ffp.psnr_stats": "JSON: training PSNR statistics {mean, std (dB), n} for stream mode, or null",
    "ffp.default_threshold": "JSON: the default alarm threshold per mode {whole, stream}",
    "ffp.step": "JSON: the training step of the checkpoint",
    "ffp.flownet": "JSON: the flow estimator used in training {name, checkpoint}, or null",
    "ffp.selected_with_test_labels": "JSON: whether the checkpoint was chosen by its test AUC",
    "ffp.train_seconds": "JSON: the training run's wall time in seconds, or null",
}
REQUIRED = ("ffp.format", "ffp.config", "ffp.height", "ffp.width", "ffp.in_frames")


def _import_onnxruntime():
    """The onnxruntime module; FFPError saying how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise FFPError("an ONNX model needs onnxruntime: pip install onnxruntime (docs/deployment.md)") from None
    return onnxruntime


def _providers(ort, device: str | None) -> list:
    """ONNX Runtime execution providers for --device (auto: CUDA when this onnxruntime has it, else CPU; cuda:N
    selects GPU N)."""
    available = ort.get_available_providers()
    cuda = "CUDAExecutionProvider" in available
    if device in (None, "", "auto"):
        device = "cuda" if cuda else "cpu"
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if str(device).startswith("cuda") and cuda:
        index = str(device).partition(":")[2] or "0"
        return [("CUDAExecutionProvider", {"device_id": int(index)}), "CPUExecutionProvider"]
    raise FFPError(
        f"--device {device}: this onnxruntime runs on {', '.join(available)} (use --device cpu, or install "
        "onnxruntime-gpu for CUDA)"
    )


def _metadata_value(meta: dict[str, str], key: str, path: Path):
    """A JSON metadata value (None when absent); FFPError naming the key when it is not JSON."""
    if key not in meta:
        return None
    try:
        return json.loads(meta[key])
    except json.JSONDecodeError:
        raise FFPError(f"--trained_model {path}: metadata {key} is not valid JSON: {meta[key][:80]!r}") from None


def _check_io(session, path: Path) -> None:
    """FFPError naming what differs when the graph's input or outputs are not the ones export.py writes."""
    inputs, outputs = session.get_inputs(), {o.name for o in session.get_outputs()}
    expected = f"one input {INPUT!r} (uint8, B×(T+1)×H×W×3) and outputs {', '.join(OUTPUTS)}"
    if len(inputs) != 1 or inputs[0].name != INPUT or inputs[0].type != "tensor(uint8)" or len(inputs[0].shape) != 5:
        found = ", ".join(f"{i.name} ({i.type.replace('tensor(', '').rstrip(')')}, {i.shape})" for i in inputs)
        raise FFPError(
            f"--trained_model {path}: expected {expected}; its inputs are {found or 'none'}: not a model written "
            "by export.py --format onnx"
        )
    missing = [name for name in OUTPUTS if name not in outputs]
    if missing:
        raise FFPError(f"--trained_model {path}: expected {expected}; outputs {', '.join(missing)} are missing")


def _check_size(session, path: Path, height: int, width: int, in_frames: int) -> None:
    """FFPError when the graph's input size disagrees with the metadata's."""
    shape = list(session.get_inputs()[0].shape[1:])
    if shape != [in_frames + 1, height, width, 3]:
        raise FFPError(
            f"--trained_model {path}: its metadata says windows of {in_frames + 1} frames of {height}×{width} "
            f"(ffp.in_frames, ffp.height, ffp.width) but its graph takes {shape}: the file was changed after export"
        )


def model_info(meta: dict[str, str], path: Path) -> ModelInfo:
    """ModelInfo from an ONNX file's 'ffp.*' metadata; FFPError naming every missing key, or a value that
    disagrees with the stored config."""
    missing = [key for key in REQUIRED if key not in meta]
    if missing:
        raise FFPError(
            f"--trained_model {path}: metadata {', '.join(missing)} missing (found: "
            f"{', '.join(sorted(meta)) or 'none'}): not written by export.py --format onnx, which stores the size, "
            "frame count and statistics detection needs"
        )
    if meta["ffp.format"] != METADATA_FORMAT:
        raise FFPError(
            f"--trained_model {path}: metadata format {meta['ffp.format']!r}, this code reads {METADATA_FORMAT!r}"
        )
    config = _metadata_value(meta, "ffp.config", path)
    if not isinstance(config, dict):
        raise FFPError(f"--trained_model {path}: metadata ffp.config is not a config object")
    cfg = Config.from_dict(config)
    for key in ("height", "width", "in_frames"):
        value = _metadata_value(meta, f"ffp.{key}", path)
        if value != getattr(cfg, key):
            raise FFPError(
                f"--trained_model {path}: metadata ffp.{key} is {value} but its ffp.config says {getattr(cfg, key)}"
            )
    fps = _metadata_value(meta, "ffp.fps", path)
    good_fps = isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0
    stats = _metadata_value(meta, "ffp.psnr_stats", path)
    thresholds = _metadata_value(meta, "ffp.default_threshold", path) or {}
    if not (isinstance(thresholds, dict) and all(isinstance(v, (int, float)) for v in thresholds.values())):
        raise FFPError(f"--trained_model {path}: metadata ffp.default_threshold is not {{mode: number}}")
    seconds = _metadata_value(meta, "ffp.train_seconds", path)
    return ModelInfo(
        path=path,
        trained=cfg,
        cfg=cfg,
        step=_metadata_value(meta, "ffp.step", path),
        psnr_stats=stats if isinstance(stats, dict) else None,
        fps=float(fps) if good_fps else None,
        fps_origin=(meta.get("ffp.fps_origin") or "stored in the ONNX file")
        if good_fps
        else "the ONNX file does not know its training footage's frame rate",
        selected_with_test_labels=bool(_metadata_value(meta, "ffp.selected_with_test_labels", path)),
        flownet=flownet_name(_metadata_value(meta, "ffp.flownet", path)),
        default_threshold={**DEFAULT_THRESHOLD, **thresholds},
        train_seconds=float(seconds) if isinstance(seconds, (int, float)) else None,
    )


def load_onnx_model(path: str | Path, threads: int = 0, device: str | None = "cpu") -> tuple[OnnxPredictor, ModelInfo]:
    """(OnnxPredictor, ModelInfo) of an ONNX file written by `export.py --format onnx`.

    threads: intra-op threads (0: ONNX Runtime's default, one per core); device: 'cpu', 'cuda[:N]' or 'auto'.
    FFPError (one line naming the file) when it is missing, not ONNX, lacks the metadata, or has other inputs.
    """
    ort = _import_onnxruntime()
    path = Path(path)
    if not path.is_file():
        raise FFPError(f"--trained_model {path}: no such file")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: its warnings about unused initialisers are not the user's concern
    try:
        session = ort.InferenceSession(str(path), options, providers=_providers(ort, device))
    except Exception as exc:  # onnxruntime raises its own exception types (InvalidProtobuf, Fail, ...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FFPError(f"--trained_model {path}: not an ONNX model ONNX Runtime can load ({first[:200]})") from None
    _check_io(session, path)
    info = model_info(dict(session.get_modelmeta().custom_metadata_map), path)
    _check_size(session, path, info.cfg.height, info.cfg.width, info.cfg.in_frames)
    # Where it really runs: ONNX Runtime falls back to the CPU when the CUDA provider cannot load.
    where = "cpu" if session.get_providers()[0] == "CPUExecutionProvider" else str(device or "cuda")
    cfg = info.cfg
    chunk = cpu_micro_batch(cfg.g_widths[0], cfg.height, cfg.width) if where == "cpu" else None
    return OnnxPredictor(session, cfg.in_frames, ("onnxruntime", ort.__version__), where, chunk), info


class OnnxPredictor:
    """The inference.runtime.Predictor of an ONNX Runtime session: NumPy frames in, NumPy predictions out.

    micro_batch: windows per session call (None: all at once); on CPU `load_onnx_model` sets it as PyTorch's
    path does (inference.runtime.cpu_micro_batch), which keeps the peak memory flat whatever the batch size."""

    def __init__(
        self, session, in_frames: int, runtime: tuple[str, str], device: str = "cpu", micro_batch: int | None = None
    ):
        self.session, self.in_frames, self.runtime, self.device = session, in_frames, runtime, device
        self.micro_batch = micro_batch

    def batches(self, video, cfg: Config, batch_size: int):
        """dataset.ArrayBatches of the video: uint8 B×H×W×3, decoded in this thread."""
        from dataset.array_batches import ArrayBatches

        return ArrayBatches(video, cfg.height, cfg.width, batch_size)

    def targets(self, frames: np.ndarray, targets: list[int]) -> Predictions:
        """inference.runtime.Predictor.targets: frames L×H×W×3 uint8, targets indices ≥ T."""
        index = np.asarray(targets, dtype=np.int64)[:, None] + np.arange(-self.in_frames, 1)
        windows = np.ascontiguousarray(frames[index])  # M×(T+1)×H×W×3, oldest frame first
        step = self.micro_batch or len(windows)
        parts = [self.session.run(list(OUTPUTS), {INPUT: windows[i : i + step]}) for i in range(0, len(windows), step)]
        preds, psnr, maps = (np.concatenate(outputs) for outputs in zip(*parts))
        return Predictions(
            targets[0],
            psnr.astype(np.float32, copy=False),
            lambda: maps,
            lambda: windows[:, self.in_frames].copy(),  # a copy: a view would keep all T+1 frames alive
            lambda: preds,
        )

    def stream(self, batches) -> Iterator[Predictions]:
        """inference.runtime.Predictor.stream over ArrayBatches (the last T frames carried between batches)."""
        history: np.ndarray | None = None
        seen = 0
        for batch in batches:
            seq = batch if history is None else np.concatenate([history, batch])
            if len(seq) > self.in_frames:
                pred = self.targets(seq, list(range(self.in_frames, len(seq))))
                pred.first_index = seen + len(batch) - (len(seq) - self.in_frames)
                yield pred
            history = seq[-self.in_frames :]
            seen += len(batch)
