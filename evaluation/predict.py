"""Batched future-frame prediction over a video: every frame decoded once, windows built on the device.

Frames stream in as ordered uint8 batches B×3×H×W; the last T frames are carried over between batches, so
memory stays flat however long the video is. Per-frame PSNR stays on the device until the video ends
(one host sync per video, not per frame).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import torch
from torch import nn

from dataset import to_network_range
from evaluation.scores import error_map, psnr_per_frame


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


def iter_predictions(generator: nn.Module, frame_batches: Iterable[torch.Tensor], in_frames: int,
                     device: torch.device) -> Iterator[WindowPrediction]:
    """Slide an (in_frames+1)-window over a stream of uint8 B×3×H×W frame batches and predict each target.

    Yields one WindowPrediction per input batch that completes at least one window.
    """
    history: torch.Tensor | None = None
    seen = 0
    with torch.inference_mode():
        for batch in frame_batches:
            frames = to_network_range(batch.to(device, non_blocking=True))
            seq = frames if history is None else torch.cat([history, frames])
            n_targets = seq.shape[0] - in_frames
            if n_targets > 0:
                # unfold: (N - T)×3×H×W×(T+1) views; reorder to (N - T)×(T+1)×3×H×W.
                windows = seq.unfold(0, in_frames + 1, 1).permute(0, 4, 1, 2, 3)
                inputs = windows[:, :in_frames].reshape(n_targets, -1, *seq.shape[-2:])
                targets = windows[:, in_frames]
                preds = generator(inputs)
                first = seen + frames.shape[0] - n_targets
                yield WindowPrediction(first, targets, preds, psnr_per_frame(preds, targets))
            history = seq[-in_frames:]
            seen += frames.shape[0]


def predict_video_psnr(generator: nn.Module, frame_batches: Iterable[torch.Tensor], in_frames: int,
                       device: torch.device) -> np.ndarray:
    """PSNR (dB) of every predicted frame of one video, (n_frames − in_frames,) float32 (frame in_frames first)."""
    chunks = [p.psnr for p in iter_predictions(generator, frame_batches, in_frames, device)]
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return torch.cat(chunks).float().cpu().numpy()


def score_videos(generator: nn.Module, videos: list, cfg, device: torch.device,
                 batch_size: int | None = None) -> dict[str, np.ndarray]:
    """{video name: PSNR per predicted frame} for a list of `dataset.Video`, frames decoded once by workers."""
    from dataset import video_frame_batches
    batch_size = batch_size or cfg.eval_batch_size
    generator.eval()
    return {v.name: predict_video_psnr(generator, video_frame_batches(v, cfg, batch_size), cfg.in_frames, device)
            for v in videos}
