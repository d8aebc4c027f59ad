"""Setting up a run's data: find the configured dataset, check its videos are long enough, cut the training videos.

    files = prepare_dataset(cfg)             # <data_root>/<dataset> found, labels read and checked
    videos = training_videos(files, cfg)     # each cut to its normal part when --train_until is given

Points in a video given as frames or seconds (`--train_until`, `--start`) become frame numbers here (`frame_number`).
"""

from __future__ import annotations

from config import Config, parse_until
from errors import FFPError

from .folders import FrameFolder
from .layouts import find_dataset
from .types import DatasetFiles, Video
from .videos import VideoFile


def frame_number(text: str, video: Video, flag: str) -> int:
    """A point in `video` given as frames ('400') or seconds ('40s') — `--train_until`, `--start` — as a frame
    number: seconds × the file's frame rate, rounded half up (durations.Duration.frames). FFPError naming the flag
    and the video when the value is malformed or given in seconds for a source without a frame rate (a folder)."""
    parsed = parse_until(text, flag)
    if parsed is None:
        raise FFPError(f"{flag} needs a number of frames ('400') or seconds ('40s'), got {text!r}")
    if parsed.unit == "frames":
        return int(parsed.value)
    fps = video.source.container()[0] if isinstance(video.source, VideoFile) else None
    if fps is None:
        why = (
            "is a folder of frames (no frame rate)"
            if isinstance(video.source, FrameFolder)
            else "declares no usable frame rate"
        )
        raise FFPError(f"{flag} {text}: {video.where} {why}; give it in frames instead (e.g. {flag} 400)")
    return parsed.frames(fps)


def training_videos(files: DatasetFiles, cfg: Config) -> list[Video]:
    """The training videos, each cut to its normal part when --train_until is given (frames or seconds; FFPError
    from `frame_number` when it is malformed or in seconds for a folder of frames)."""
    if cfg.train_until in (None, ""):
        return files.train
    return [v.head(frame_number(cfg.train_until, v, "--train_until")) for v in files.train]


def prepare_dataset(cfg: Config, split: str = "train") -> DatasetFiles:
    """Find the configured dataset (generating the synthetic one on first use, into <data_root>/synthetic only),
    read and check its labels, and check every test video and training frame folder holds one window.

    split: the split the command needs ('train' for training, 'test' for evaluation, which works from a download of
    the test videos alone); see `layouts.find_dataset`.

    Training video FILES are counted when they are decoded (TrainWindows), still before any training step.
    FFPError for a dataset not found, a bad label or mask, or a video shorter than one window.
    """
    if cfg.dataset == "synthetic":
        from synthetic import ensure_synthetic

        ensure_synthetic(cfg.data_root, seed=0)
    files = find_dataset(cfg.data_root, cfg.dataset, split=split)
    for video in [v for v in files.train if isinstance(v.source, FrameFolder)] + files.test:
        check_length(video, len(video), cfg.in_frames)
    return files


def check_length(video: Video, n_frames: int, in_frames: int, cut: str = "") -> None:
    """FFPError naming `video` when its `n_frames` frames (those it has, or those `cut` leaves, e.g. ' before
    --train_until 40s') are fewer than one window: in_frames + the predicted frame."""
    if n_frames < in_frames + 1:
        raise FFPError(
            f"{video.where} has {n_frames} frames{cut}, shorter than the {in_frames + 1}-frame window "
            f"(--in_frames {in_frames} + the predicted frame)"
        )
