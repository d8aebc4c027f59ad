"""Score any video with no labels: per-frame PSNR of the generator's prediction, an anomaly score, alarms.

    python detect.py --video clip.mp4 --trained_model weights/ped2_latest.pth [--mode whole|stream]
                     [--threshold T] [--save_video] [--out_dir results] [--device cpu] [--batch_size 16]

--video is a video file (anything cv2.VideoCapture reads: mp4, avi, ...) or a folder of frames. Frames get
the training preprocessing (`dataset.prepare_frame`: RGB, resized to the checkpoint config's size).
Modes:
  whole   the paper's score: 1 − min-max(PSNR) over the whole file, in [0, 1]; default threshold 0.5.
          Needs the whole file before any score exists; an offline analysis, not comparable across files.
  stream  score = (mean − PSNR) / std, the z-score of −PSNR under the PSNR statistics of the TRAINING data
          stored in the checkpoint (state['psnr_stats'], see evaluation.predict.training_psnr_stats) or given
          with --psnr_mean/--psnr_std; default threshold 3.0. Each frame's score is final as soon as it is
          predicted, and scores.csv rows are appended batch by batch.
Frames are read one batch at a time in both modes; only per-frame PSNR and scores (12 bytes a frame) are
kept, never frames or error maps of the whole video. --save_video (frame | heatmap | overlay + score curve,
fixed heatmap scale) reads the input twice: pass 1 scores and estimates the scale in bounded memory
(VmaxEstimator), pass 2 writes the mp4.
Writes results/detect_<video-stem>/ (numbered sibling when it exists, unless --overwrite): scores.csv
(frame,psnr,score,above_threshold), curve.png, alarms.txt (frames above the threshold), summary.json,
index.html, heatmap.mp4. Built in a hidden temp folder and renamed into place when complete.
"""
from __future__ import annotations

import argparse
import csv
import math
import sys
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, TextIO

import cv2
import numpy as np
import torch

from cli import run_cli
from config import Config
from dataset import Video, list_images, prepare_frame, video_frame_batches
from evaluation.predict import generator_from_state, iter_predictions
from evaluation.report import DETECT_CSV_HEADER, StagedResult, detect_csv_rows, file_stems, write_detect_report
from evaluation.scores import anomaly_scores
from evaluation.video import HeatmapVideoWriter, VmaxEstimator
from training.checkpoint import load_checkpoint
from utils import FFPError, resolve_device

DEFAULT_THRESHOLD = {"whole": 0.5, "stream": 3.0}
FOLDER_FPS = 10.0   # a folder of frames has no frame rate; 10 fps is that of UCSD Ped1/Ped2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", required=True, help="video file (mp4, avi, ...) or folder of frames")
    parser.add_argument("--trained_model", required=True, help="checkpoint (.pth) written by train.py")
    parser.add_argument("--mode", choices=("whole", "stream"), default="whole",
                        help="whole: 1 - minmax(PSNR) over the file; stream: z-score of -PSNR from training stats")
    parser.add_argument("--threshold", type=float, default=None,
                        help="alarm when score > threshold (default 0.5 whole, 3.0 stream)")
    parser.add_argument("--psnr_mean", type=float, default=None, help="stream mode: training PSNR mean (dB)")
    parser.add_argument("--psnr_std", type=float, default=None, help="stream mode: training PSNR std (dB)")
    parser.add_argument("--save_video", action="store_true", help="also write heatmap.mp4 (reads the input twice)")
    parser.add_argument("--out_dir", default="results", help="parent folder of the result folder")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing result folder")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, auto (default: the checkpoint's)")
    parser.add_argument("--batch_size", type=int, default=None, help="frames per batch (default eval_batch_size)")
    parser.add_argument("--max_frames", type=int, default=None, help="score only the first N frames")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    args = parser.parse_args(argv)
    for flag in ("batch_size", "max_frames"):
        if getattr(args, flag) is not None and getattr(args, flag) <= 0:
            raise FFPError(f"--{flag} must be a positive integer, got {getattr(args, flag)}")
    if args.threshold is not None and not math.isfinite(args.threshold):
        raise FFPError(f"--threshold must be a finite number, got {args.threshold}")
    return args


# ----------------------------------------------------------------------------- frame sources

@dataclass
class FrameSource:
    """A re-readable video: `batches()` starts a fresh ordered stream of uint8 B×3×H×W batches."""
    path: Path
    fps: float
    batches: Callable[[], Iterable[torch.Tensor]]


def _stack(frames: list[np.ndarray]) -> torch.Tensor:
    """list of H×W×3 uint8 -> B×3×H×W uint8 tensor."""
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()


def capture_batches(path: Path, height: int, width: int, batch_size: int,
                    max_frames: int | None = None) -> Iterator[torch.Tensor]:
    """Decode a video file with cv2.VideoCapture, batch by batch: uint8 B×3×height×width RGB (prepare_frame).

    Only one batch of frames is in memory at a time. FFPError naming the file if OpenCV cannot open it.
    """
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise FFPError(f"--video {path}: OpenCV cannot open it (expected a video file such as .mp4/.avi, "
                       "or a folder of frames)")
    try:
        batch, n = [], 0
        while max_frames is None or n < max_frames:
            ok, bgr = capture.read()
            if not ok:
                break
            batch.append(prepare_frame(bgr, height, width))
            n += 1
            if len(batch) == batch_size:
                yield _stack(batch)
                batch = []
        if batch:
            yield _stack(batch)
    finally:
        capture.release()


def open_source(path: Path, cfg: Config, batch_size: int, max_frames: int | None) -> FrameSource:
    """FrameSource of a folder of frames (decoded by dataset.video_frame_batches) or a video file."""
    if path.is_dir():
        frames = list_images(path)[:max_frames]
        if not frames:
            raise FFPError(f"--video {path}: the folder holds no frames (.jpg, .png, .tif, .bmp)")
        video = Video(path.name, frames)
        return FrameSource(path, FOLDER_FPS, lambda: video_frame_batches(video, cfg, batch_size))
    if not path.is_file():
        raise FFPError(f"--video {path} does not exist (expected a video file or a folder of frames)")
    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS) if capture.isOpened() else 0.0
    capture.release()
    return FrameSource(path, fps if 0 < fps < 1000 else FOLDER_FPS,
                       lambda: capture_batches(path, cfg.height, cfg.width, batch_size, max_frames))


class _Counted:
    """Wraps a batch stream and counts the frames that went through (to report too-short inputs)."""

    def __init__(self, batches: Iterable[torch.Tensor]):
        self.batches, self.n = batches, 0

    def __iter__(self) -> Iterator[torch.Tensor]:
        for batch in self.batches:
            self.n += len(batch)
            yield batch


# ----------------------------------------------------------------------------- scoring

@dataclass
class Normaliser:
    """PSNR (dB) -> anomaly score. mode 'stream': (mean - psnr) / std; 'whole': 1 - minmax over the file."""
    mode: str
    mean: float | None = None
    std: float | None = None

    def stream(self, psnr: np.ndarray) -> np.ndarray:
        """Scores of a batch as soon as it is predicted (stream mode only; float64)."""
        return (self.mean - np.asarray(psnr, dtype=np.float64)) / self.std

    def final(self, psnr: np.ndarray) -> np.ndarray:
        """Scores of the whole file (N,) float64."""
        return self.stream(psnr) if self.mode == "stream" else anomaly_scores(psnr)

    @property
    def label(self) -> str:
        """Short name of the score, for plot legends."""
        return "z-score of -PSNR (training stats)" if self.mode == "stream" else "1 - minmax(PSNR)"

    def describe(self) -> str:
        """How the score was computed, for the report."""
        if self.mode == "stream":
            return f"(mean - PSNR) / std with training PSNR mean {self.mean:.4f} dB, std {self.std:.4f} dB"
        return "1 - minmax(PSNR) over the whole input (the paper's per-video normalisation)"


def normaliser(mode: str, state: dict, args: argparse.Namespace, ckpt: Path) -> Normaliser:
    """The score normalisation of --mode; stream mode needs training PSNR stats (checkpoint or flags)."""
    if mode == "whole":
        return Normaliser("whole")
    if (args.psnr_mean is None) != (args.psnr_std is None):
        raise FFPError("--psnr_mean and --psnr_std must be given together")
    if args.psnr_mean is not None:
        mean, std = args.psnr_mean, args.psnr_std
    else:
        stats = state.get("psnr_stats")
        if not isinstance(stats, dict) or "mean" not in stats or "std" not in stats:
            raise FFPError(f"--mode stream needs the training PSNR statistics, but checkpoint {ckpt} has no "
                           "'psnr_stats': retrain with the current train.py, use --mode whole, or pass "
                           "--psnr_mean and --psnr_std")
        mean, std = float(stats["mean"]), float(stats["std"])
    if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
        raise FFPError(f"stream mode needs a finite PSNR mean and a positive std, got mean {mean}, std {std} "
                       "(--psnr_mean/--psnr_std or the checkpoint's psnr_stats)")
    return Normaliser("stream", float(mean), float(std))


def score_stream(generator: torch.nn.Module, batches: Iterable[torch.Tensor], in_frames: int,
                 device: torch.device, norm: Normaliser, threshold: float, csv_file: TextIO | None = None,
                 vmax: VmaxEstimator | None = None) -> np.ndarray:
    """One pass over a stream of uint8 B×3×H×W batches: PSNR (float32 (N,)) of frames in_frames.. in order.

    csv_file (stream mode only, since whole-mode scores need the whole file): scores.csv rows are appended
    and flushed batch by batch. vmax: offered every batch's error maps (for the heatmap scale); without it
    no error map is computed. Memory: one batch of frames plus 4 bytes per scored frame, whatever the length.
    """
    psnr_parts = []
    rows = csv.writer(csv_file, lineterminator="\n") if csv_file is not None else None
    for pred in iter_predictions(generator, batches, in_frames, device):
        # A copy, not a view: a view keeps each batch's torch allocation alive, and on a long stream those
        # pinned blocks fragment the heap (measured: +143 MB peak RSS over 20,000 frames of 32×48; +5 MB copied).
        psnr = pred.psnr.float().cpu().numpy().copy()
        psnr_parts.append(psnr)
        if vmax is not None:
            vmax.add(pred.error_maps().cpu().numpy())
        if rows is not None:
            frames = pred.first_index + np.arange(len(psnr))
            rows.writerows(detect_csv_rows(frames, psnr, norm.stream(psnr), threshold))
            csv_file.flush()  # a reader tailing the file sees each batch as soon as it is scored
    return np.concatenate(psnr_parts) if psnr_parts else np.zeros(0, np.float32)


def write_heatmap_video(path: Path, generator: torch.nn.Module, source: FrameSource, cfg: Config,
                        device: torch.device, scores: np.ndarray, vmax: float, threshold: float,
                        score_range: tuple[float, float]) -> None:
    """Pass 2 of --save_video: predict again batch by batch and append each frame to the mp4.

    scores: (N,) final scores of frames in_frames.. from pass 1; vmax: the fixed heatmap scale.
    """
    in_frames, size = cfg.in_frames, (cfg.height, cfg.width)
    with HeatmapVideoWriter(path, source.fps, vmax=vmax, size=size, curve_length=len(scores),
                            score_range=score_range, threshold=threshold, first_frame=in_frames) as writer:
        for pred in iter_predictions(generator, source.batches(), in_frames, device):
            part = scores[pred.first_index - in_frames: pred.first_index - in_frames + len(pred.psnr)]
            writer.add_batch(pred.target_images().cpu().numpy(), pred.error_maps().cpu().numpy(), part)


def _score_range(norm: Normaliser, scores: np.ndarray, threshold: float) -> tuple[float, float]:
    """y-axis of the video's score curve: [0, 1] for min-max scores, else spanning scores and threshold."""
    if norm.mode == "whole":
        return 0.0, 1.0
    lo = min(0.0, float(scores.min()), threshold)
    top = max(float(scores.max()), threshold)
    return lo, top + 0.1 * (top - lo) + 1e-6   # headroom so the highest point is not on the border


def run_detect(generator: torch.nn.Module, source: FrameSource, cfg: Config, device: torch.device,
               norm: Normaliser, threshold: float, save_video: bool, out: Path, meta: dict) -> dict:
    """Score `source` and write the report into `out`; returns the summary (n_frames, n_above, ...)."""
    counted = _Counted(source.batches())
    vmax = VmaxEstimator() if save_video else None
    streamed = norm.mode == "stream"
    with open(out / "scores.csv", "w", newline="") if streamed else nullcontext() as csv_file:
        if csv_file is not None:
            csv.writer(csv_file, lineterminator="\n").writerow(DETECT_CSV_HEADER)
        psnr = score_stream(generator, counted, cfg.in_frames, device, norm, threshold, csv_file, vmax)
    if len(psnr) == 0:
        raise FFPError(f"--video {source.path}: {counted.n} frame(s) read, fewer than the {cfg.in_frames + 1}-frame "
                       f"window ({cfg.in_frames} past frames + the predicted one)")
    scores = norm.final(psnr)
    video = None
    if save_video:
        video = "heatmap.mp4"
        write_heatmap_video(out / video, generator, source, cfg, device, scores, vmax.value(),
                            threshold, _score_range(norm, scores, threshold))
    frames = cfg.in_frames + np.arange(len(psnr))
    meta = {**meta, "frames_read": counted.n, "first_scored_frame": cfg.in_frames, "score": norm.describe()}
    write_detect_report(out, frames, psnr, scores, threshold, meta, csv_written=streamed, video=video,
                        score_label=norm.label)
    return {"n_frames": len(psnr), "n_above": int((scores > threshold).sum()), "frames_read": counted.n}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ckpt = Path(args.trained_model)
    state = load_checkpoint(ckpt)
    cfg = Config.from_dict(state["config"])
    norm = normaliser(args.mode, state, args, ckpt)
    threshold = DEFAULT_THRESHOLD[args.mode] if args.threshold is None else args.threshold
    device = resolve_device(args.device or cfg.device)
    generator = generator_from_state(state, cfg, device, f"checkpoint {ckpt}")
    source = open_source(Path(args.video), cfg, args.batch_size or cfg.eval_batch_size, args.max_frames)
    stem = source.path.stem if source.path.is_file() else source.path.name
    name = f"detect_{file_stems([stem])[stem]}"
    meta = {"video": str(source.path), "checkpoint": str(ckpt), "step": state.get("step"), "mode": args.mode,
            "max_frames": args.max_frames, "frame_size": [cfg.height, cfg.width], "psnr_stats":
            {"mean": norm.mean, "std": norm.std} if norm.mode == "stream" else None}
    with StagedResult(args.out_dir, name, args.overwrite) as stage:
        summary = run_detect(generator, source, cfg, device, norm, threshold, args.save_video, stage.dir, meta)
    print(f"scored {summary['n_frames']} frames (frames {cfg.in_frames}..{cfg.in_frames + summary['n_frames'] - 1} "
          f"of {summary['frames_read']} read); {summary['n_above']} above threshold {threshold:g} "
          f"[mode={args.mode}: {norm.describe()}]; results in {stage.path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
