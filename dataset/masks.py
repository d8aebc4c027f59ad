"""Pixel masks of test videos (for pixel AUROC): how each storage is read, and where they are looked for.

A video's masks give one mask per frame, read as H×W bool (True = abnormal) at any requested size. The places
looked in are the table MASK_PLACES at the end of this module; every place is tried, in order, and one that has
masks for all test videos replaces what an earlier one found. A mask count that differs from the video's frame
count is one FFPError naming both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from errors import FFPError

from .files import canonical, is_junk, is_video_file, list_images, natural_key
from .images import decode_image
from .types import MaskSource, Video
from .videos import VideoFile

MASK_EXTS = (".bmp", ".png")


class MaskImages:
    """Pixel masks as image files, one per frame (UCSD TestNNN_gt/*.bmp|png)."""

    small = True  # cheap to read whole (to compare with other labels): a few MB

    def __init__(self, files: list[Path], where: Path):
        self.files, self.where = files, where

    def __len__(self) -> int:
        return len(self.files)

    def read(self, index: int, size: tuple[int, int] | None = None) -> np.ndarray:
        """Mask of frame `index` as H×W bool (True = abnormal), nearest-neighbour resized to size=(H, W)."""
        return _binary(decode_image(self.files[index], cv2.IMREAD_GRAYSCALE), size)


class MaskArray:
    """Pixel masks as one n_frames×H×W array in a .npy file (ShanghaiTech test_pixel_mask), memory-mapped.

    FFPError naming the file when it cannot be read or is not 3-D.
    """

    small = False  # not read whole just to compare labels: ShanghaiTech's are 16 GB in all

    def __init__(self, path: Path):
        self.where = path
        try:
            self.array = np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as exc:
            raise FFPError(f"cannot read pixel-mask file {path}: {exc}") from None
        if self.array.ndim != 3:
            raise FFPError(f"pixel-mask file {path}: expected n_frames×H×W, got shape {self.array.shape}")

    def __len__(self) -> int:
        return int(self.array.shape[0])

    def read(self, index: int, size: tuple[int, int] | None = None) -> np.ndarray:
        """Mask of frame `index` as H×W bool (True = abnormal), nearest-neighbour resized to size=(H, W)."""
        return _binary(np.asarray(self.array[index]).astype(np.uint8, copy=False), size)


def _binary(mask: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """uint8 H0×W0 mask -> bool H×W (value > 0 = abnormal); nearest keeps it binary (no half-abnormal pixels)."""
    if size is not None and mask.shape != tuple(size):
        mask = cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    return mask > 0


class MaskVideo:
    """Pixel masks stored as a video file, one frame per video frame (e.g. TestNNN_gt.avi); decoded on first use
    and kept in memory as uint8 (masks are small: 180 frames of 240×360 are 16 MB)."""

    small = True  # cheap to read whole (to compare with other labels)

    def __init__(self, path: Path):
        self.where = path
        self._masks: list[np.ndarray] | None = None

    def _all(self) -> list[np.ndarray]:
        if self._masks is None:
            source = VideoFile(self.where)
            _, _, height, width = source.container()  # masks are read at their own size
            self._masks = [cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) for _, rgb in source.frames(height, width)]
        return self._masks

    def __len__(self) -> int:
        return len(self._all())

    def read(self, index: int, size: tuple[int, int] | None = None) -> np.ndarray:
        """Mask of frame `index` as H×W bool (True = abnormal: lossy codecs leave faint values, so > 127)."""
        return _binary((self._all()[index] > 127).astype(np.uint8), size)


def mask_image_dirs(dataset_dir: Path) -> list[Path]:
    """UCSD-style TestNNN_gt pixel masks in natural order (testing/UCSD_pixel_masks/ or Test/): image folders, or
    video files (TestNNN_gt.avi, …, a video being a folder or a file everywhere), or []."""
    for base in (dataset_dir / "testing" / "UCSD_pixel_masks", dataset_dir / "Test"):
        found = (
            sorted((p for p in base.glob("Test*_gt*") if p.is_dir() or is_video_file(p)), key=natural_key)
            if base.is_dir()
            else []
        )
        if found:
            return found
    return []


def mask_images(path: Path) -> MaskImages | MaskVideo:
    """The pixel masks of one test video: a folder of mask images, or a mask video file."""
    return MaskImages(list_images(path, MASK_EXTS), path) if path.is_dir() else MaskVideo(path)


# ----------------------------------------------------------------------------------------------- where masks are
def _ucsd_masks(ds: Path, test: list[Video]) -> list[MaskSource] | None:
    """UCSD TestNNN_gt folders or mask videos, paired with the test videos by position (only when the counts agree)."""
    gt_dirs = mask_image_dirs(ds)
    if not gt_dirs or len(gt_dirs) != len(test):
        return None
    return [mask_images(gt_dir) for gt_dir in gt_dirs]


def _npy_masks(ds: Path, test: list[Video]) -> list[MaskSource] | None:
    """ShanghaiTech testing/test_pixel_mask/<video>.npy, paired by name (only when every test video has one)."""
    npy_dir = ds / "testing" / "test_pixel_mask"
    if not npy_dir.is_dir():
        return None
    arrays = {canonical(p.stem): p for p in npy_dir.glob("*.npy") if not is_junk(p)}
    if not all(canonical(v.name) in arrays for v in test):
        return None
    return [MaskArray(arrays[canonical(v.name)]) for v in test]


@dataclass(frozen=True)
class MaskPlace:
    """One place pixel masks are looked for under a dataset folder <ds>.

    find(<ds>, test videos) -> one mask reader per test video (in their order), or None when this place has none.
    folders: names of the folders it occupies, which are never taken for videos.
    """

    name: str
    find: Callable[[Path, list[Video]], list[MaskSource] | None]
    folders: tuple[str, ...] = ()


# Where pixel masks are looked for, every place in this order (a later one found replaces an earlier one).
MASK_PLACES: tuple[MaskPlace, ...] = (
    # UCSD: testing/UCSD_pixel_masks/TestNNN_gt/ or Test/TestNNN_gt/ (*.bmp|png images, or TestNNN_gt.avi …)
    MaskPlace("ucsd", _ucsd_masks, folders=("UCSD_pixel_masks",)),
    # ShanghaiTech: testing/test_pixel_mask/<video>.npy (n_frames×H×W, nonzero = abnormal)
    MaskPlace("shanghaitech", _npy_masks, folders=("test_pixel_mask",)),
)


def attach_masks(ds: Path, test: list[Video], places: tuple[MaskPlace, ...] = MASK_PLACES) -> None:
    """Set `masks` of the test videos (types.Video) from `places` under folder `ds`: one mask per frame number
    (video.frame_span() of them; a video with missing frames keeps the masks of the frames it has, by number).

    FFPError naming the mask source and the video when a video's mask count differs from its numbered frames.
    """
    for place in places:
        found = place.find(ds, test)
        if found is not None:
            for video, masks in zip(test, found):
                video.masks = masks
    for video in test:
        if video.masks is not None and len(video.masks) != video.frame_span():
            numbered = "" if video.frame_span() == len(video) else f" numbered 0-{video.frame_span() - 1}"
            raise FFPError(
                f"pixel masks {video.masks.where}: {len(video.masks)} masks but test video {video.name} "
                f"has {len(video)} frames{numbered} ({video.where})"
            )
