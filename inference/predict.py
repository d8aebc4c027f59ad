"""Batched future-frame prediction over a video: every frame decoded once, windows built on the device.

Frames stream in as ordered uint8 batches B×3×H×W; the last T frames are carried over between batches, so
memory stays flat however long the video is. Per-frame PSNR stays on the device until the video ends
(one host sync per video, not per frame).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from checkpoint import load_state_strict
from config import STATS_WINDOWS
from dataset import Video, to_network_range, video_frame_batches
from dataset.resample import continuity
from errors import FFPError
from evaluation.scores import error_map, psnr_per_frame
from inference.runtime import Predictions, cpu_micro_batch
from model import Generator


def generator_from_state(state: dict, cfg, device: torch.device, what: str) -> nn.Module:
    """Generator with a checkpoint's 'net_g' weights (architecture from `cfg`), in eval mode on `device`.

    `what` names the checkpoint in the FFPError raised when the weights do not fit the architecture.
    """
    g = Generator(cfg.in_frames, cfg.g_widths)
    load_state_strict(g, state["net_g"], what)
    return g.to(device).eval()


@dataclass
class WindowPrediction:
    """Predictions for a run of consecutive windows: target frames, predicted frames, their PSNR (dB).

    frames/preds: M×3×H×W in [-1, 1]; psnr: M float32; first_index: video index of the first target.
    """

    first_index: int
    targets: torch.Tensor
    preds: torch.Tensor
    psnr: torch.Tensor

    def error_maps(self) -> torch.Tensor:
        """M×H×W per-pixel squared error on [0, 1] frames, averaged over channels."""
        return error_map(self.preds, self.targets)

    def target_images(self) -> torch.Tensor:
        """M×H×W×3 uint8 RGB target frames (exact for uint8 input), on the device."""
        return uint8_images(self.targets)


def uint8_images(frames: torch.Tensor) -> torch.Tensor:
    """M×3×H×W in [-1, 1] -> M×H×W×3 uint8 RGB (the inverse of `to_network_range`; values outside are clipped).
    inference.runtime.uint8_images is its NumPy twin."""
    return (frames.float() + 1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def run_generator(generator: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """generator(inputs): B×3T×H×W -> B×3×H×W, channels-last, on CPU in cache-sized micro-batches.

    Channels-last because oneDNN's (and cuDNN's tensor-core) convolutions work in NHWC natively; NCHW
    input is reordered at every layer (~1.4× slower per frame at 256×256 on CPU, bench/eval_speed.py).
    """
    inputs = inputs.contiguous(memory_format=torch.channels_last)
    if inputs.device.type != "cpu":
        return generator(inputs)
    chunk = cpu_micro_batch(getattr(generator, "widths", (64,))[0], inputs.shape[-2], inputs.shape[-1])
    if chunk >= inputs.shape[0]:
        return generator(inputs)
    return torch.cat([generator(part) for part in inputs.split(chunk)])


def predict_targets(
    generator: nn.Module, frames: torch.Tensor, targets: list[int], in_frames: int, device: torch.device
) -> WindowPrediction:
    """Predict frames[i] from frames[i - in_frames .. i - 1] for every i in `targets` (each ≥ in_frames).

    frames: L×3×H×W uint8 (any device), consecutive frames; targets: M indices into them. The live loop uses this
    where a stream of frames has breaks (a window never spans one). first_index of the result is targets[0].
    """
    with torch.inference_mode():
        seq = to_network_range(frames.to(device, non_blocking=True))
        index = torch.as_tensor(targets, device=seq.device)
        past = index[:, None] + torch.arange(-in_frames, 0, device=seq.device)  # M×T
        inputs = seq[past].reshape(len(targets), -1, *seq.shape[-2:])  # M×3T×H×W, oldest frame first
        truth = seq[index]
        preds = run_generator(generator, inputs)
        return WindowPrediction(targets[0], truth, preds, psnr_per_frame(preds, truth))


class TorchPredictor:
    """The inference.runtime.Predictor of a PyTorch generator (detect.py and the live loop): NumPy out."""

    runtime: tuple[str, str] = ("torch", str(torch.__version__))

    def __init__(self, generator: nn.Module, in_frames: int, device: torch.device):
        self.generator, self.in_frames, self.torch_device = generator, in_frames, device
        self.device = str(device)

    def batches(self, video: Video, cfg, batch_size: int):
        """dataset.FrameBatches of the video (uint8 B×3×H×W tensors; DataLoader workers decode frame folders)."""
        return video_frame_batches(video, cfg, batch_size)

    def stream(self, batches) -> Iterator[Predictions]:
        """inference.runtime.Predictor.stream through `iter_predictions`."""
        for pred in iter_predictions(self.generator, batches, self.in_frames, self.torch_device):
            yield _as_numpy(pred)

    def targets(self, frames: np.ndarray, targets: list[int]) -> Predictions:
        """inference.runtime.Predictor.targets through `predict_targets` (frames L×H×W×3 uint8)."""
        seq = torch.from_numpy(frames).permute(0, 3, 1, 2)
        return _as_numpy(predict_targets(self.generator, seq, targets, self.in_frames, self.torch_device))


def _as_numpy(pred: WindowPrediction) -> Predictions:
    """A WindowPrediction's results as inference.runtime.Predictions (error maps and images converted on demand)."""
    # A copy, not a view: a view keeps each batch's torch allocation alive, and on a long stream those blocks
    # fragment the heap (measured: +143 MB peak RSS over 20,000 frames of 32×48).
    psnr = pred.psnr.float().cpu().numpy().copy()
    return Predictions(
        pred.first_index,
        psnr,
        lambda: pred.error_maps().float().cpu().numpy(),
        lambda: pred.target_images().cpu().numpy(),
        lambda: pred.preds.float().cpu().numpy(),
    )


class Cancelled(Exception):
    """A prediction pass stopped because its `cancel` callback said so (e.g. a training run got SIGTERM)."""


def iter_predictions(
    generator: nn.Module,
    frame_batches: Iterable[torch.Tensor],
    in_frames: int,
    device: torch.device,
    cancel: Callable[[], bool] | None = None,
) -> Iterator[WindowPrediction]:
    """Slide an (in_frames+1)-window over a stream of uint8 B×3×H×W frame batches and predict each target.

    Yields one WindowPrediction per input batch that completes at least one window. Raises Cancelled before
    a batch when `cancel()` is true.
    """
    history: torch.Tensor | None = None
    seen = 0
    with torch.inference_mode():
        for batch in frame_batches:
            if cancel is not None and cancel():
                raise Cancelled
            frames = to_network_range(batch.to(device, non_blocking=True))
            seq = frames if history is None else torch.cat([history, frames])
            n_targets = seq.shape[0] - in_frames
            if n_targets > 0:
                # unfold: (N - T)×3×H×W×(T+1) views; reorder to (N - T)×(T+1)×3×H×W.
                windows = seq.unfold(0, in_frames + 1, 1).permute(0, 4, 1, 2, 3)
                inputs = windows[:, :in_frames].reshape(n_targets, -1, *seq.shape[-2:])
                targets = windows[:, in_frames]
                preds = run_generator(generator, inputs)
                first = seen + frames.shape[0] - n_targets
                yield WindowPrediction(first, targets, preds, psnr_per_frame(preds, targets))
            history = seq[-in_frames:]
            seen += frames.shape[0]


def predict_video_psnr(
    generator: nn.Module,
    frame_batches: Iterable[torch.Tensor],
    in_frames: int,
    device: torch.device,
    cancel: Callable[[], bool] | None = None,
) -> np.ndarray:
    """PSNR (dB) of every predicted frame of one video, (n_frames − in_frames,) float32 (frame in_frames first),
    windows across breaks included: the raw pass bench/eval_speed.py times; scores come from `scored_psnr`."""
    chunks = [p.psnr for p in iter_predictions(generator, frame_batches, in_frames, device, cancel)]
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return torch.cat(chunks).float().cpu().numpy()


def scored_psnr(
    generator: nn.Module,
    video: Video,
    cfg,
    device: torch.device,
    batch_size: int | None = None,
    cancel: Callable[[], bool] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(PSNR (N,) float32 dB, frame numbers (N,) int64) of the frames of `video` whose window spans no break, in
    order: the rule of eval.py, detect.py and the live loop (dataset.resample.continuity: a missing frame number,
    which training windows never span either, or a hole in a video file's time). A video without breaks scores every
    frame after its first in_frames. One host sync per video. Raises Cancelled as soon as `cancel()` is true
    (checked before every batch)."""
    batches = video_frame_batches(video, cfg, batch_size or cfg.eval_batch_size)
    rule = continuity(video, None)
    chunks, keep, numbers = [], [np.zeros(0, bool)], [np.zeros(0, np.int64)]
    for pred in iter_predictions(generator, batches, cfg.in_frames, device, cancel):
        first, count = pred.first_index, len(pred.psnr)
        keep.append(rule.scorable(batches, first, count, cfg.in_frames))
        chunks.append(pred.psnr)
        numbers.append(np.asarray(batches.numbers[first : first + count], dtype=np.int64)[keep[-1]])
    psnr = torch.cat(chunks).float().cpu().numpy() if chunks else np.zeros(0, np.float32)
    return psnr[np.concatenate(keep)], np.concatenate(numbers)


def score_videos(
    generator: nn.Module,
    videos: list[Video],
    cfg,
    device: torch.device,
    batch_size: int | None = None,
    cancel: Callable[[], bool] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """({video name: PSNR}, {video name: frame numbers}) of the scored frames of each video (`scored_psnr`), each
    frame decoded once. Raises Cancelled as soon as `cancel()` is true (checked before every batch)."""
    generator.eval()
    scored = {v.name: scored_psnr(generator, v, cfg, device, batch_size, cancel) for v in videos}
    return {k: p for k, (p, _) in scored.items()}, {k: n for k, (_, n) in scored.items()}


def training_psnr_stats(
    generator: nn.Module,
    videos: list[Video],
    cfg,
    device: torch.device,
    max_windows: int = STATS_WINDOWS,
    batch_size: int | None = None,
    cancel: Callable[[], bool] | None = None,
) -> dict:
    """PSNR statistics of the generator's predictions on training windows, for `detect.py --mode stream`.

    Stored in checkpoints as state['psnr_stats'] so an unlabelled stream can be normalised without seeing
    its future (score = (mean - psnr) / std). Uses the first ceil(max_windows / len(videos)) windows of
    every training video (contiguous, so each frame is decoded once; none spanning a break, `scored_psnr`), at most
    `max_windows` in total.
    The generator is run in eval mode and put back in the mode it was in.
    Returns {'mean': float dB, 'std': float dB (population), 'n': int windows}; FFPError when no video
    has a full window; Cancelled when `cancel()` turns true.
    """
    per_video = max(1, math.ceil(max_windows / max(1, len(videos))))
    was_training = generator.training
    generator.eval()
    chunks = []
    try:
        for v in videos:
            head = v.head(per_video + cfg.in_frames)
            chunks.append(scored_psnr(generator, head, cfg, device, batch_size, cancel)[0])
    finally:
        generator.train(was_training)
    psnr = np.concatenate(chunks or [np.zeros(0)]).astype(np.float64)[:max_windows]
    if psnr.size == 0:
        raise FFPError(
            f"training PSNR statistics: no training video has {cfg.in_frames + 1} consecutive frames (one window)"
        )
    return {"mean": float(psnr.mean()), "std": float(psnr.std()), "n": int(psnr.size)}


def psnr_stats_from_training_data(
    state: dict, cfg, data_root: str | None, device: torch.device, what: str, max_windows: int = STATS_WINDOWS
) -> dict:
    """training_psnr_stats of a checkpoint's generator on its own training data, for checkpoints saved without
    them (a run stopped before its end).

    cfg: the command's Config (config_flags.command_config: the model's settings from the checkpoint, this machine's
    workers, batch size and device). The data is looked for under `data_root` (the command's --data_root) or,
    when None, where the checkpoint's config says it was trained: the one setting of the training machine still
    used, because these statistics are about that data. FFPError when the data cannot be read.
    """
    from dataclasses import replace

    from dataset import find_dataset, training_videos

    root = data_root or state["config"].get("data_root") or cfg.data_root
    cfg = replace(cfg, dataset=state["config"].get("dataset", cfg.dataset), data_root=root, device=str(device))
    try:
        files = find_dataset(root, cfg.dataset, with_labels=False)
    except FFPError as exc:
        raise FFPError(
            f"{what} has no training PSNR statistics (a run stopped before its end) and its training "
            f"data could not be read to compute them ({exc}); pass --data_root"
        ) from None
    generator = generator_from_state(state, cfg, device, what)
    stats = training_psnr_stats(generator, training_videos(files, cfg), cfg, device, max_windows=max_windows)
    return {**stats, "computed_from": str(files.root)}
