"""Data: where frames come from (folders or video files), how datasets are laid out, labels, and loaders.

    files = prepare_dataset(cfg)                 # find <data_root>/<dataset>, read and check labels
    windows = TrainWindows(training_videos(files, cfg), cfg)   # decoded once, random (T+1)-frame windows
    for batch in video_frame_batches(files.test[0], cfg, 16): ...   # a test video in order, uint8 B×3×H×W

Modules: `sources` (frame folders and video files, decoding, damage reports), `labels` (every label
format, checked when loaded), `layouts` (finding datasets: FFP, official Avenue/ShanghaiTech, UCSD, your
own), `loaders` (frame cache, training windows, samplers, test batches).
"""
from .labels import (LabelNotes, MaskArray, MaskImages, entry_labels, frame_labels, interval_labels,
                     labels_from_masks, load_mat)
from .layouts import BENCHMARKS, DatasetFiles, Video, check_lengths, find_dataset, scored_labels, split_videos
from .loaders import (EpochShuffleSampler, FrameBatches, FrameStore, TrainWindows, data_workers, extracted_frames,
                      frame_number, prepare_dataset, train_loader, training_videos, video_frame_batches)
from .sources import (IMAGE_EXTS, VIDEO_EXTS, DecodeReport, FrameFolder, VideoFile, decode_image, is_junk,
                      list_images, open_source, prepare_frame, read_frame, to_network_range)

__all__ = ["LabelNotes", "MaskArray", "MaskImages", "entry_labels", "frame_labels", "interval_labels",
           "labels_from_masks", "load_mat", "BENCHMARKS", "DatasetFiles", "Video", "check_lengths", "find_dataset",
           "scored_labels", "split_videos", "EpochShuffleSampler", "FrameBatches", "FrameStore", "TrainWindows",
           "data_workers", "extracted_frames", "frame_number", "prepare_dataset", "train_loader", "training_videos",
           "video_frame_batches", "IMAGE_EXTS", "VIDEO_EXTS", "DecodeReport", "FrameFolder", "VideoFile",
           "decode_image", "is_junk", "list_images", "open_source", "prepare_frame", "read_frame", "to_network_range"]
