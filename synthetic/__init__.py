"""Embedded synthetic dataset: a tiny UCSD-Ped2-like walkway, the project's default data on a fresh machine.

The scene is one fixed camera looking down a walkway at a slant: a static textured background, 3-7 small
pedestrians walking up/down the frame at 0.4-1.0 px/frame, sub-pixel positions rendered with bilinear
(anti-aliased) placement, plus slight Gaussian sensor noise. Training videos hold only such walkers. Each test
video adds one anomaly kind during its abnormal interval(s): fast "bikes" (3-5 px/frame), large textured
"carts" (~14x10 px) at walking speed, or a "crosser" walking left/right faster than walkers. Constant-velocity
motion over a static background is what a frame predictor can learn; the anomalies break exactly that.

On-disk layout (that of the UCSD Ped2 release used by published FFP code):
    <root>/synthetic/training/frames/01/000.jpg ...          3-channel JPEG (grey content), quality 95
    <root>/synthetic/testing/frames/01/000.jpg ...
    <root>/synthetic/testing/UCSD_pixel_masks/Test001_gt/001.png ...   uint8 0/255 single channel, 1-based
    <root>/synthetic/synthetic.mat    variable `gt`: cell of 2xK abnormal intervals, 1-based inclusive
    <root>/synthetic/.complete        JSON marker; its presence means the folder is complete
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import scipy.io

from errors import FFPError
from utils.files import install_folder, remove_dead_staging, staging_folder

from .scene import (
    DATASET_NAME,
    GENERATOR_VERSION,
    JPEG_QUALITY,
    MARKER_NAME,
    MAX_FRAMES,
    MAX_VIDEOS,
    MIN_FRAMES,
    SYNTHETIC_VIDEO_SIZE,
    SyntheticVideo,
    make_background,
)
from .videos import generate_video, labels_to_intervals

# ----------------------------------------------------------------------------------------------- on disk


def _config(seed: int, n_train: int, n_test: int, n_frames: int, size: tuple[int, int]) -> dict:
    """Validated generation parameters; also the content of the .complete marker."""

    def in_range(x, lo, hi) -> bool:
        return isinstance(x, (int, np.integer)) and not isinstance(x, bool) and lo <= x <= hi

    checks = [
        (in_range(seed, 0, 2**63), f"seed={seed!r}: expected an integer >= 0"),
        (in_range(n_train, 1, MAX_VIDEOS), f"n_train={n_train!r}: expected an integer 1..{MAX_VIDEOS}"),
        (in_range(n_test, 1, MAX_VIDEOS), f"n_test={n_test!r}: expected an integer 1..{MAX_VIDEOS}"),
        (
            in_range(n_frames, MIN_FRAMES, MAX_FRAMES),
            f"n_frames={n_frames!r}: expected an integer {MIN_FRAMES}..{MAX_FRAMES}",
        ),
        (len(size) == 2 and all(in_range(x, 32, 4096) for x in size), f"size={size!r}: expected (H, W), each 32..4096"),
    ]
    for ok, message in checks:
        if not ok:
            raise FFPError(f"synthetic dataset: {message}")
    return {
        "generator": "ffp-synthetic",
        "version": GENERATOR_VERSION,
        "seed": int(seed),
        "n_train": int(n_train),
        "n_test": int(n_test),
        "n_frames": int(n_frames),
        "size": [int(size[0]), int(size[1])],
    }


def _frame_dir(dataset: Path, split: str, index: int) -> Path:
    """<dataset>/<split>/frames/NN for the 0-based video `index`."""
    return dataset / split / "frames" / f"{index + 1:02d}"


def _mask_dir(dataset: Path, index: int) -> Path:
    """<dataset>/testing/UCSD_pixel_masks/TestNNN_gt for the 0-based test video `index`."""
    return dataset / "testing" / "UCSD_pixel_masks" / f"Test{index + 1:03d}_gt"


def _read_marker(dataset: Path) -> dict | None:
    """The marker's JSON, or None when it is missing or unreadable."""
    try:
        return json.loads((dataset / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _is_complete(dataset: Path, config: dict) -> bool:
    """True when `dataset` has a marker matching `config` and every expected file count (cheap listing)."""
    if _read_marker(dataset) != config:
        return False
    n = config["n_frames"]
    dirs = [_frame_dir(dataset, "training", i) for i in range(config["n_train"])]
    dirs += [_frame_dir(dataset, "testing", i) for i in range(config["n_test"])]
    dirs += [_mask_dir(dataset, i) for i in range(config["n_test"])]
    counts_ok = all(d.is_dir() and len(os.listdir(d)) == n for d in dirs)
    return counts_ok and (dataset / f"{DATASET_NAME}.mat").is_file()


def _imwrite(path: Path, image: np.ndarray, params: list[int]) -> None:
    """cv2.imwrite that raises instead of returning False."""
    if not cv2.imwrite(str(path), image, params):
        raise FFPError(f"{path}: could not write the image (is the folder writable and the disk not full?)")


def _write_video(dataset: Path, split: str, index: int, video: SyntheticVideo) -> None:
    """Write the frames (3-channel JPEG, 0-based names) and, for test videos, masks (PNG, 1-based names)."""
    frame_dir = _frame_dir(dataset, split, index)
    frame_dir.mkdir(parents=True)
    for f, frame in enumerate(video.frames):
        _imwrite(frame_dir / f"{f:03d}.jpg", cv2.merge([frame, frame, frame]), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if split == "testing":
        mask_dir = _mask_dir(dataset, index)
        mask_dir.mkdir(parents=True)
        for f, mask in enumerate(video.masks):
            _imwrite(mask_dir / f"{f + 1:03d}.png", mask, [])


def _write_dataset(dataset: Path, config: dict) -> None:
    """Generate and write every video, the gt .mat and finally the marker (last, so it implies completeness)."""
    size, n = tuple(config["size"]), config["n_frames"]
    background = make_background(config["seed"], size)
    gt = np.empty(config["n_test"], dtype=object)
    for split, count in (("training", config["n_train"]), ("testing", config["n_test"])):
        for i in range(count):
            video = generate_video(config["seed"], split, i, n, size, background)
            _write_video(dataset, split, i, video)
            if split == "testing":
                gt[i] = labels_to_intervals(video.labels)
    scipy.io.savemat(str(dataset / f"{DATASET_NAME}.mat"), {"gt": gt})
    (dataset / MARKER_NAME).write_text(json.dumps(config, sort_keys=True), encoding="utf-8")


def _install(tmp: Path, dest: Path, config: dict) -> None:
    """Move the finished `tmp` folder to `dest`, replacing a stale generated one (utils.files.install_folder). If
    another process installed a matching dataset meanwhile, keep theirs."""
    try:
        install_folder(tmp, dest)
    except OSError:
        if not _is_complete(dest, config):
            raise


def _prepare_root(root: str | os.PathLike) -> Path:
    """Create `root` if needed; FFPError when it is a file or cannot be created."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FFPError(f"synthetic data root {root}: cannot create the folder ({e.strerror})") from e
    return root


def ensure_synthetic(
    root: str | os.PathLike,
    seed: int = 0,
    *,
    n_train: int = 8,
    n_test: int = 6,
    n_frames: int = 120,
    size: tuple[int, int] = SYNTHETIC_VIDEO_SIZE,
) -> Path:
    """Make sure `<root>/synthetic` holds the synthetic dataset for these parameters; return that path.

    A no-op when its `.complete` marker matches (seed, generator version, counts, size) and the files are all
    there. Otherwise generates deterministically from `seed` into a temporary sibling folder and renames it into
    place, so a crash never leaves a half dataset. Raises FFPError for bad arguments, an unwritable root, or a
    `<root>/synthetic` that was not made by this generator (no marker: it is never deleted).
    """
    config = _config(seed, n_train, n_test, n_frames, size)
    dest = _prepare_root(root) / DATASET_NAME
    if _is_complete(dest, config):
        return dest
    if dest.exists() and not (dest / MARKER_NAME).is_file():
        raise FFPError(
            f"{dest}: exists but has no {MARKER_NAME} marker, so it was not made by the synthetic "
            f"generator; move it away or pass another data root"
        )
    try:
        remove_dead_staging(dest.parent)  # what a killed generation left
        tmp = staging_folder(dest.parent, DATASET_NAME)
    except OSError as e:
        raise FFPError(f"synthetic data root {dest.parent}: not writable ({e.strerror})") from e
    try:
        _write_dataset(tmp, config)
        _install(tmp, dest, config)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
