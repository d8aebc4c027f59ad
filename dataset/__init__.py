"""Data: where frames come from (folders or video files), how datasets are laid out, labels, and serving frames.

    files = prepare_dataset(cfg)                 # find <data_root>/<dataset>, read and check labels
    windows = TrainWindows(training_videos(files, cfg), cfg)   # decoded once, random (T+1)-frame windows
    for batch in video_frame_batches(files.test[0], cfg, 16): ...   # a test video in order, uint8 B×3×H×W

Modules, lowest layer first (no module imports one listed after it):
- frames: `files` (which files are frames, videos or junk), `opencv_log`, `preprocess` (the one resize rule, RGB,
  the [-1, 1] scaling), `images` (image files, bit depth), `frame_numbers` (gaps), `folders` (a folder of frames),
  `container_index` (frame numbers from a container), `videos` (a video file), `sources` (either, by path);
- datasets: `types` (Video, DatasetFiles, the mask interface), `label_values` (labels checked when loaded),
  `label_files` (every label format), `labels` (where labels are looked for), `masks` (pixel masks; where they
  are looked for), `layouts` (the table of dataset layouts; finding a dataset), `prepare` (a run's data set-up);
- serving frames: `workers` (DataLoader workers), `frame_cache` (video files extracted once for random access),
  `windows` (training windows and their seeded order), `array_batches` (a video's frames as NumPy batches, for
  ONNX Runtime), `streaming` (a test video's frames in order), `resample` (frame rate and breaks in time), `live`
  (a stream or camera read by a thread).
What callers outside this package use is exported here; everything else is internal.
The torch-based modules (`streaming`, `windows`, `workers`) load on first use, so that detecting with an ONNX model
never imports torch.
"""

from typing import TYPE_CHECKING

from .folders import FolderReport, FrameFolder
from .frame_numbers import gaps_after
from .images import read_frame
from .label_files import labels_from_masks
from .label_values import entry_labels
from .layouts import find_dataset
from .masks import MaskImages
from .opencv_log import opencv_log_at_most
from .prepare import frame_number, prepare_dataset, training_videos
from .preprocess import prepare_frame, to_network_range
from .sources import open_source
from .types import DatasetFiles, LabelNotes, Video, labels_by_number, scored_labels
from .videos import DecodeReport, VideoFile

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
