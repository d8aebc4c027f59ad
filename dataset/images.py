"""Image files: decoded with one clear error per bad file; 16-bit frames brought to 8 bits by their folder's depth."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from errors import FFPError

from .files import list_images
from .opencv_log import opencv_log_at_most
from .preprocess import prepare_frame

_JPEG_TAIL = 4096  # FF D9 cannot occur inside entropy-coded data (0xFF is byte-stuffed), so this is safe


def _check_complete(data: bytes, path: str | Path) -> None:
    """Refuse a JPEG/PNG/BMP whose end is missing (a truncated copy or download), naming the file.

    Decoders accept such files silently (a JPEG decodes to a half-grey image) or print C-level warnings,
    so the end of the file is checked first: JPEG end-of-image marker FF D9 near the end (a little trailing
    padding is tolerated), PNG IEND chunk, BMP header size <= file size. A cheap byte test, no decoding.
    """
    if data[:3] == b"\xff\xd8\xff":
        if b"\xff\xd9" not in data[-_JPEG_TAIL:]:
            raise FFPError(
                f"cannot read image {path}: truncated JPEG ({len(data)} bytes, no end-of-image "
                f"marker); re-extract or replace this frame"
            )
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        if b"IEND" not in data[-64:]:
            raise FFPError(
                f"cannot read image {path}: truncated PNG ({len(data)} bytes, no IEND chunk); "
                f"re-extract or replace this frame"
            )
    elif data[:2] == b"BM" and len(data) >= 6:
        expected = int.from_bytes(data[2:6], "little")
        if len(data) < expected:
            raise FFPError(
                f"cannot read image {path}: truncated BMP ({len(data)} of {expected} bytes); "
                f"re-extract or replace this frame"
            )


def decode_image(path: str | Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """An image file decoded by OpenCV (BGR, or grey with IMREAD_GRAYSCALE); FFPError naming the file if unreadable.

    Missing, unreadable, empty, truncated (JPEG/PNG/BMP, see `_check_complete`) and undecodable files are
    refused with one message naming the file; OpenCV's own C-level log lines are silenced while decoding.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise FFPError(f"cannot read image {path}: {exc.strerror or exc}") from None
    if not data:
        raise FFPError(f"cannot read image {path}: the file is empty (0 bytes)")
    _check_complete(data, path)
    with opencv_log_at_most(cv2.utils.logging.LOG_LEVEL_SILENT):
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None:
        raise FFPError(f"cannot read image {path}: not a valid image file (corrupt or unsupported format)")
    return image


def read_frame(path: str | Path, height: int, width: int) -> np.ndarray:
    """Read one image as H×W×3 uint8 RGB resized to (height, width); FFPError naming the file if unreadable.

    Frames of different sizes in one video are all resized to the config size (made consistent, not refused).
    16-bit images are brought to 8 bits by `to_8bit` (sensor data of 12 bits is not read as a black frame).
    """
    return prepare_frame(to_8bit(decode_image(path, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH), path), height, width)


TWELVE_BIT_MAX = 4095
DEPTH_SAMPLE = 16  # frames of a folder looked at to decide its bit depth
_folder_full_scale: dict[str, int] = {}  # folder -> 4095 or 65535, decided once per process


def sixteen_bit_full_scale(path: str | Path) -> int:
    """The value that maps to 255 for the 16-bit frames of `path`'s folder: 4095 when the largest value over up
    to DEPTH_SAMPLE frames spread through the folder is at most 4095 (12-bit sensor data), else 65535.

    Decided once per folder (and process, with the same answer in every DataLoader worker) so that all frames of
    one video are scaled alike: a dark frame is never brightened 16× next to its neighbours. Says once how the
    folder is read."""
    folder = Path(path).parent
    key = str(folder)
    if key not in _folder_full_scale:
        files = list_images(folder) or [Path(path)]
        sample = files[:: max(1, len(files) // DEPTH_SAMPLE)][:DEPTH_SAMPLE]
        top = max(int(decode_image(f, cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH).max()) for f in sample)
        full = TWELVE_BIT_MAX if top <= TWELVE_BIT_MAX else 65535
        _folder_full_scale[key] = full
        print(
            f"note: {folder} holds 16-bit images (largest value {top} in {len(sample)} of its {len(files)} "
            f"frames): read as {12 if full == TWELVE_BIT_MAX else 16}-bit data scaled to 0..255",
            flush=True,
        )
    return _folder_full_scale[key]


def to_8bit(image: np.ndarray, path: str | Path) -> np.ndarray:
    """uint8 as is; a uint16 image scaled to uint8 by its folder's bit depth (`sixteen_bit_full_scale`: ×255/4095
    for 12-bit sensor data, ×255/65535 for full 16-bit data). FFPError naming the file for a frame above its
    folder's 12-bit range (frames of one video must share one bit depth) and for other pixel types (float images).
    """
    if image.dtype == np.uint8:
        return image
    if image.dtype != np.uint16:
        raise FFPError(f"cannot read image {path}: {image.dtype} pixels (expected 8- or 16-bit integer images)")
    full = sixteen_bit_full_scale(path)
    top = int(image.max()) if image.size else 0
    if top > full:
        raise FFPError(
            f"cannot read image {path}: values up to {top}, but the other frames of {Path(path).parent} "
            f"are 12-bit data (at most {TWELVE_BIT_MAX}); frames of one video must share one bit depth"
        )
    return np.clip(image.astype(np.float32) * (255.0 / full) + 0.5, 0, 255).astype(np.uint8)
