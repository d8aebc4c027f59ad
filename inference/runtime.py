"""What scores frames, whatever runs the model: the interface detect.py and the live loop use, without torch.

Two runtimes implement `Predictor`: PyTorch (`inference.predict.TorchPredictor`, a checkpoint's generator) and
ONNX Runtime (`inference.onnx_model.OnnxPredictor`, a file written by `export.py --format onnx`). Both take frames
after the same preprocessing (`dataset.prepare_frame`: RGB, resized to the model's size, uint8) and give NumPy
results, so everything after prediction (scores, events, reports, videos) is one code path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from config import DEFAULT_THRESHOLD, Config

# On CPU the generator runs on micro-batches whose full-resolution activation (N×widths[0]×H×W float32) stays
# about the size of a last-level cache: at 256×256 with 64 channels that is one window (16 MiB); a batch of
# 16 streams 256 MiB per layer through memory and costs ~30 % more per frame in PyTorch (docs/performance.md), and
# ONNX Runtime's peak memory grows with the batch (1.6 GiB at batch 16 for --preset cpu; bench/onnx_speed.py).
CPU_ACTIVATION_BYTES = 16 * 2**20


def cpu_micro_batch(first_width: int, height: int, width: int) -> int:
    """Windows per generator call on CPU (≥ 1): CPU_ACTIVATION_BYTES over one window's first-level activation
    (first_width channels × height × width float32)."""
    return max(1, CPU_ACTIVATION_BYTES // (first_width * height * width * 4))


@dataclass
class Predictions:
    """Predictions of M targets: where they are, their PSNR, and (computed on demand) error maps and target frames;
    the error maps are computed once however often they are asked for.

    first_index: the first target's index in the stream of frames (or in the frames given to `Predictor.targets`);
    psnr: (M,) float32 dB of each predicted frame against its real frame (evaluation.scores.psnr_per_frame).
    """

    first_index: int
    psnr: np.ndarray
    _error_maps: Callable[[], np.ndarray] = field(repr=False)
    _target_images: Callable[[], np.ndarray] = field(repr=False)
    _predictions: Callable[[], np.ndarray] = field(repr=False)  # M×3×H×W float32 in [-1, 1]
    _maps: np.ndarray | None = field(default=None, repr=False)

    def error_maps(self) -> np.ndarray:
        """M×H×W float32 per-pixel squared error on [0, 1] frames, averaged over channels (values in [0, 1])."""
        if self._maps is None:
            self._maps = self._error_maps()
        return self._maps

    def target_images(self) -> np.ndarray:
        """M×H×W×3 uint8 RGB target frames, as they entered the model."""
        return self._target_images()

    def prediction_images(self) -> np.ndarray:
        """M×H×W×3 uint8 RGB predicted frames (the generator's [-1, 1] output rounded to 0..255)."""
        return uint8_images(self._predictions())


def uint8_images(frames: np.ndarray) -> np.ndarray:
    """M×3×H×W in [-1, 1] -> M×H×W×3 uint8 RGB (the inverse of `dataset.to_network_range`; values outside are
    clipped). NumPy's twin of inference.predict.uint8_images, which does the same on the device."""
    return np.clip(np.round((frames.astype(np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


class Predictor(Protocol):
    """A trained generator ready to score frames (PyTorch or ONNX Runtime)."""

    in_frames: int  # T: past frames per window
    runtime: tuple[str, str]  # (name, version), for reports: ('torch', '2.14.1'), ('onnxruntime', '1.32.0')
    device: str  # where it runs: 'cpu', 'cuda:0'

    def batches(self, video: Any, cfg: Config, batch_size: int) -> Any:
        """The video's frames in order as batches this predictor reads (dataset.FrameBatches or ArrayBatches)."""
        ...

    def stream(self, batches: Any) -> Iterator[Predictions]:
        """Slide a (T+1)-frame window over `batches` (from `batches`) and predict every target: one Predictions per
        batch that completes at least one window, first_index counting frames of the whole stream. Windows are not
        checked for breaks here: every caller keeps only the targets whose window spans none, by one rule
        (dataset.resample.Continuity.scorable: eval.py, detect.py, inference.predict.scored_psnr)."""
        ...

    def targets(self, frames: np.ndarray, targets: list[int]) -> Predictions:
        """Predict frames[i] from frames[i-T .. i-1] for every i in `targets` (each ≥ T). frames: L×H×W×3 uint8 RGB,
        consecutive; first_index of the result is targets[0]."""
        ...


@dataclass(frozen=True)
class ModelInfo:
    """What detection needs to know about a trained model, from a checkpoint or an ONNX file's metadata.

    trained: the config the model was trained with; cfg: the command's config (the model's settings, this machine's
    runtime settings, e.g. eval.py's --dataset); fps: the training footage's frame
    rate (frames/s) or None when unknown, fps_origin saying where it comes from; psnr_stats: {'mean', 'std' (dB),
    'n', ...} of the training data or None; state: the checkpoint dict (PyTorch only; None for ONNX).
    """

    path: Path
    trained: Config
    cfg: Config
    step: int | None
    psnr_stats: dict | None
    fps: float | None
    fps_origin: str
    selected_with_test_labels: bool = False
    flownet: str | None = None
    state: dict | None = None
    default_threshold: dict = field(default_factory=lambda: dict(DEFAULT_THRESHOLD))  # mode -> threshold
    train_seconds: float | None = None  # the training run's wall time, when recorded

    @property
    def described(self) -> str:
        """'weights/ped2_cpu.pth (step 3000)', for report headers."""
        return f"{self.path} (step {self.step if self.step is not None else '?'})"


def flownet_name(stored: Any) -> str | None:
    """The flow estimator's name from a checkpoint's 'flownet' entry or an ONNX file's ffp.flownet: {'name': …, …}
    today, a plain name in older files; None when absent."""
    if isinstance(stored, dict):
        return stored.get("name")
    return stored if isinstance(stored, str) else None


def warm_up(predictor: Predictor, size: tuple[int, int]) -> None:
    """Run a predictor once on blank windows of size (H, W), 1 and 2 at a time, before a live source starts: the
    first calls build PyTorch's convolution kernels or ONNX Runtime's memory plan (seconds on CPU), which would
    otherwise be paid by the first frames' latency."""
    frames = np.zeros((predictor.in_frames + 2, *size, 3), dtype=np.uint8)
    predictor.targets(frames, [predictor.in_frames])
    predictor.targets(frames, [predictor.in_frames, predictor.in_frames + 1])


def predict_frames(predictor: Predictor, video: Any, numbers, cfg: Config) -> dict[int, dict]:
    """Re-predict a few chosen frames of a video (e.g. the report's worst false alarms): the video is decoded in
    order and the model runs only on the windows whose target has a number in `numbers`.

    Returns {frame number: {'frame': H×W×3 uint8 RGB target, 'prediction': H×W×3 uint8 RGB, 'error': H×W float32
    per-pixel squared error on [0, 1] frames}}, at the config size; numbers the video does not reach are absent.
    """
    wanted, found = set(int(n) for n in numbers), {}
    window: list[np.ndarray] = []
    for number, rgb in video.source.frames(cfg.height, cfg.width):
        window = (window + [rgb])[-(cfg.in_frames + 1) :]
        if number in wanted and len(window) == cfg.in_frames + 1:
            pred = predictor.targets(np.stack(window), [cfg.in_frames])
            found[number] = {
                "frame": pred.target_images()[0],
                "prediction": pred.prediction_images()[0],
                "error": pred.error_maps()[0].astype(np.float32),
            }
        if len(found) == len(wanted) or (wanted and number >= max(wanted)):
            break
    return found
