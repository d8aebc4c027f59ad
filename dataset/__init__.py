"""Data: where frames come from (folders or video files), how datasets are laid out, labels, and serving frames.

    files = prepare_dataset(cfg)                 # find <data_root>/<dataset>, read and check labels
    windows = TrainWindows(training_videos(files, cfg), cfg)   # decoded once, random (T+1)-frame windows
    for batch in video_frame_batches(files.test[0], cfg, 16): ...   # a test video in order, uint8 B×3×H×W

Modules, lowest layer first: `sources` (frame folders and video files, decoding, damage reports), `labels` (every
label format, checked when loaded; where labels are looked for), `masks` (pixel masks; where they are looked for),
`layouts` (the table of dataset layouts; finding a dataset), `prepare` (a run's data set-up), `workers`
(DataLoader workers), `frame_cache` (video files extracted once for random access), `windows` (training windows
and their seeded order), `streaming` (a test video's frames in order). What callers outside this package use is
exported here; everything else is internal. `array_batches` serves a video's frames as NumPy batches (ONNX Runtime).
The torch-based modules (`streaming`, `windows`, `workers`) load on first use, so that detecting with an ONNX model
never imports torch.
"""

from typing import TYPE_CHECKING

from .labels import LabelNotes, entry_labels, labels_from_masks
from .layouts import DatasetFiles, Video, find_dataset, labels_by_number, scored_labels
from .masks import MaskImages
from .prepare import frame_number, prepare_dataset, training_videos
from .sources import (
    DecodeReport,
    FolderReport,
    FrameFolder,
    VideoFile,
    gaps_after,
    open_source,
    opencv_log_at_most,
    prepare_frame,
    read_frame,
    to_network_range,
)

if TYPE_CHECKING:
    from .streaming import video_frame_batches
    from .windows import EpochShuffleSampler, TrainWindows, train_loader
    from .workers import data_workers

_TORCH_EXPORTS = {
    "video_frame_batches": "streaming",
    "EpochShuffleSampler": "windows",
    "TrainWindows": "windows",
    "train_loader": "windows",
    "data_workers": "workers",
}


def __getattr__(name: str):
    """The torch-based exports, imported when first asked for (PEP 562)."""
    if name in _TORCH_EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_TORCH_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "LabelNotes",
    "entry_labels",
    "labels_from_masks",
    "DatasetFiles",
    "Video",
    "find_dataset",
    "scored_labels",
    "labels_by_number",
    "MaskImages",
    "frame_number",
    "prepare_dataset",
    "training_videos",
    "DecodeReport",
    "FolderReport",
    "FrameFolder",
    "VideoFile",
    "gaps_after",
    "open_source",
    "opencv_log_at_most",
    "prepare_frame",
    "read_frame",
    "to_network_range",
    "video_frame_batches",
    "EpochShuffleSampler",
    "TrainWindows",
    "train_loader",
    "data_workers",
]
