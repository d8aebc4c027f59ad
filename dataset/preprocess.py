"""FFP's preprocessing of a frame: one resize rule to the model's size, RGB, and the [-1, 1] scaling of the network.

Every frame reaches the network through these three functions, whatever its origin (image files, video files, live
sources; training, evaluation, detection, and the exported ONNX graph)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    import torch  # annotations only: frames are prepared without torch (detect.py with an ONNX model)


def resize_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """H0×W0×C or H0×W0 uint8 (any channel order) -> height×width(×C), the one resize rule of the project:
    INTER_AREA when shrinking (no aliasing), bilinear when enlarging; the image itself when it has that size."""
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    shrink = h * w > height * width
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def prepare_frame(bgr: np.ndarray, height: int, width: int) -> np.ndarray:
    """One decoded OpenCV frame (H0×W0×3 BGR or H0×W0 grey, uint8) -> height×width×3 uint8 RGB.

    Every model input from image files and live sources goes through here; video files are converted to RGB by
    FFmpeg and resized by the same `resize_to`.
    """
    if bgr.ndim == 2:
        bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(resize_to(bgr, height, width), cv2.COLOR_BGR2RGB)


def to_network_range(frames: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] (any shape) -> float32 in [-1, 1], on the tensor's device.

    The one scaling of frames into the network: training, evaluation, detection, and the exported ONNX graph (which
    contains this function's operations, so ONNX Runtime scales exactly as PyTorch does)."""
    return frames.float().div_(127.5).sub_(1.0)
