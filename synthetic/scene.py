"""The synthetic scene: its constants, the walkway background, the sprites of walkers and anomalies, and shapes
rasterised with anti-aliasing."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

SYNTHETIC_VIDEO_SIZE = (64, 96)  # (H, W): 3:2 like Ped2's 240x360
GENERATOR_VERSION = 1  # bump whenever output bytes change, so old caches are regenerated
DATASET_NAME = "synthetic"
MARKER_NAME = ".complete"
ANOMALY_KINDS = ("bike", "cart", "crosser")  # test video i gets ANOMALY_KINDS[i % 3]

WALKER_SPEED = (0.4, 1.0)  # px/frame
WALKER_MAX_ANGLE_DEG = 25.0  # deviation from the walkway (vertical) direction
BIKE_SPEED = (3.0, 5.0)
CART_SPEED = (0.5, 0.9)
CROSSER_SPEED = (1.3, 2.0)
ANOMALY_MAX_ANGLE_DEG = 15.0
ON_SCREEN = (3, 7)  # walkers kept on screen
SPAWN_PROB = 0.05  # per frame while fewer than ON_SCREEN[1]; gives ~5 walkers on average
NOISE_SIGMA = 2.0  # grey levels of per-frame sensor noise
SUPERSAMPLE = 4  # sub-samples per pixel side when rasterising shapes (anti-aliasing)
ENTRY_OVERLAP = 1.0  # px of a new object's box already inside the frame when it spawns
MASK_ALPHA = 0.5  # anomaly coverage at or above which a pixel counts as abnormal in the mask
JPEG_QUALITY = 95
MIN_FRAMES = 20  # below this an anomaly cannot be guaranteed both normal and abnormal frames
MAX_VIDEOS = 99  # two-digit video folder names
MAX_FRAMES = 1000  # three-digit frame file names


@dataclass(frozen=True, eq=False)
class Track:
    """One moving object with constant velocity.

    kind: 'walker' | 'bike' | 'cart' | 'crosser'; abnormal: True for the anomaly kinds.
    start: first frame (0-based) the object exists; origin: its (x, y) centre in px at `start`;
    velocity: (vx, vy) in px/frame (y grows downwards).
    value: (h, w) float32 grey levels 0..255; alpha: (h, w) float32 coverage 0..1 (the sprite).
    """

    kind: str
    abnormal: bool
    start: int
    origin: tuple[float, float]
    velocity: tuple[float, float]
    value: np.ndarray
    alpha: np.ndarray

    @property
    def speed(self) -> float:
        """Speed in px/frame."""
        return float(math.hypot(*self.velocity))

    @property
    def area(self) -> float:
        """Sprite area in px (sum of coverage)."""
        return float(self.alpha.sum())

    def centers(self, n_frames: int) -> np.ndarray:
        """(n_frames, 2) float64 (x, y) centres for frames 0..n_frames-1 (extrapolated before `start` too)."""
        t = np.arange(n_frames, dtype=np.float64)[:, None] - self.start
        return np.asarray(self.origin) + t * np.asarray(self.velocity)

    def visible(self, n_frames: int, size: tuple[int, int]) -> np.ndarray:
        """(n_frames,) bool: the object exists and its box overlaps the (H, W) frame."""
        h, w = self.alpha.shape
        c = self.centers(n_frames)
        inside_x = (c[:, 0] + w / 2 > 0) & (c[:, 0] - w / 2 < size[1])
        inside_y = (c[:, 1] + h / 2 > 0) & (c[:, 1] - h / 2 < size[0])
        return inside_x & inside_y & (np.arange(n_frames) >= self.start)


@dataclass(frozen=True, eq=False)
class SyntheticVideo:
    """One generated video in memory.

    frames: (T, H, W) uint8 grey frames; masks: (T, H, W) uint8, 255 where the anomaly covers a pixel, else 0;
    labels: (T,) int64 0/1, 1 iff the frame's mask has a nonzero pixel; tracks: every object;
    anomaly: the anomaly kind of a test video, None for training videos.
    """

    frames: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    tracks: list[Track]
    anomaly: str | None


# ----------------------------------------------------------------------------------------------- rasterising


def _coverage(h: int, w: int, shapes: list[tuple]) -> np.ndarray:
    """(h, w) float32 anti-aliased coverage of a union of shapes, by SUPERSAMPLE^2 point samples per pixel.

    Each shape is ('ellipse' | 'rect', cx, cy, rx, ry) in pixel units of the (h, w) canvas.
    """
    s = SUPERSAMPLE
    ys = (np.arange(h * s) + 0.5) / s
    xs = (np.arange(w * s) + 0.5) / s
    y, x = np.meshgrid(ys, xs, indexing="ij")
    inside = np.zeros(y.shape, dtype=bool)
    for kind, cx, cy, rx, ry in shapes:
        if kind == "ellipse":
            inside |= ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0
        else:
            inside |= (np.abs(x - cx) <= rx) & (np.abs(y - cy) <= ry)
    return inside.reshape(h, s, w, s).mean(axis=(1, 3)).astype(np.float32)


def _supersampled_lines(size: tuple[int, int], lines: list[tuple], thickness_px: float) -> np.ndarray:
    """(H, W) float32 coverage of straight lines ((x0, y0), (x1, y1)) in px: drawn SUPERSAMPLE x, area-averaged."""
    s = SUPERSAMPLE
    canvas = np.zeros((size[0] * s, size[1] * s), dtype=np.uint8)
    for (x0, y0), (x1, y1) in lines:
        p0 = (int(round(x0 * s)), int(round(y0 * s)))
        p1 = (int(round(x1 * s)), int(round(y1 * s)))
        cv2.line(canvas, p0, p1, 255, thickness=max(1, int(round(thickness_px * s))))
    return cv2.resize(canvas, (size[1], size[0]), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


# ----------------------------------------------------------------------------------------------- background


def _walkway_corners(size: tuple[int, int]) -> np.ndarray:
    """(4, 2) float (x, y) corners of the walkway trapezoid: wide at the bottom, narrow at the top (perspective)."""
    h, w = size
    return np.array([[0.30 * w, 0.0], [0.70 * w, 0.0], [0.94 * w, h], [0.06 * w, h]])


def walkway_x(size: tuple[int, int], y: float, frac: float) -> float:
    """x of the point `frac` (0 = left edge, 1 = right edge) across the walkway at height y."""
    tl, tr, br, bl = _walkway_corners(size)
    t = y / size[0]
    left = tl[0] + (bl[0] - tl[0]) * t
    right = tr[0] + (br[0] - tr[0]) * t
    return float(left + (right - left) * frac)


def _walkway_coverage(size: tuple[int, int]) -> np.ndarray:
    """(H, W) float32 0..1 anti-aliased walkway area."""
    s = SUPERSAMPLE
    canvas = np.zeros((size[0] * s, size[1] * s), dtype=np.uint8)
    cv2.fillPoly(canvas, [np.round(_walkway_corners(size) * s).astype(np.int32)], 255)
    return cv2.resize(canvas, (size[1], size[0]), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def _paving_lines(size: tuple[int, int], rng: np.random.Generator) -> list[tuple]:
    """Paving joints: cross joints whose spacing grows towards the bottom (a ground plane seen at a slant)
    and two seams converging towards the top, all clipped to the walkway."""
    h = size[0]
    phase = rng.uniform(0.0, 1.0)
    lines = []
    for k in range(1, 9):
        y = h * ((k + phase) / 9.0) ** 1.5
        if y < h:
            lines.append(((walkway_x(size, y, 0.0), y), (walkway_x(size, y, 1.0), y)))
    for frac in (1 / 3, 2 / 3):
        lines.append(((walkway_x(size, 0, frac), 0.0), (walkway_x(size, h, frac), float(h))))
    return lines


def _smooth_noise(rng: np.random.Generator, size: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    """(H, W) float32 zero-mean noise with about `cells` (rows, cols) blobs: bicubic upsampling of white noise."""
    coarse = rng.standard_normal(cells).astype(np.float32)
    return cv2.resize(coarse, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)


def make_background(seed: int = 0, size: tuple[int, int] = SYNTHETIC_VIDEO_SIZE) -> np.ndarray:
    """The fixed camera's empty scene: (H, W) float32 grey levels in 0..255, deterministic in `seed`.

    A light paved walkway (trapezoid, narrowing upwards) with paving joints and dark curbs, darker gravel on
    both sides, a bench on the left, smooth illumination noise. Every video of a dataset shares it.
    """
    rng = np.random.default_rng([seed, 0])
    h, w = size
    walk = _walkway_coverage(size)
    light = 8.0 * _smooth_noise(rng, size, (3, 4))  # slow illumination changes across the scene
    gravel = 100.0 + 9.0 * _smooth_noise(rng, size, (h // 2, w // 2))
    paving = 168.0 + 4.0 * _smooth_noise(rng, size, (h // 4, w // 4))
    bg = gravel * (1.0 - walk) + paving * walk + light
    bg -= 35.0 * _supersampled_lines(size, _paving_lines(size, rng), 0.5) * walk
    tl, tr, br, bl = map(tuple, _walkway_corners(size))
    curbs = [(tl, bl), (tr, br)]
    curb = _supersampled_lines(size, curbs, 1.0)
    bg = bg * (1.0 - curb) + 70.0 * curb
    bench = _coverage(h, w, [("rect", 0.085 * w, 0.45 * h, 0.05 * w, 0.06 * h)])
    bg = bg * (1.0 - bench) + 60.0 * bench
    return np.clip(bg, 0.0, 255.0).astype(np.float32)


# ----------------------------------------------------------------------------------------------- sprites


def _canvas(hf: float, wf: float) -> tuple[int, int, float, float]:
    """Integer canvas (h, w) for a sprite of float size (hf, wf), and its centre (cx, cy)."""
    h, w = int(math.ceil(hf)), int(math.ceil(wf))
    return h, w, w / 2.0, h / 2.0


def _person_shapes(hf: float, wf: float, cx: float, cy: float) -> list[tuple]:
    """A pedestrian seen from above at a slant: body ellipse plus a head circle above it."""
    return [
        ("ellipse", cx, cy + 0.12 * hf, wf / 2.0, 0.38 * hf),
        ("ellipse", cx, cy - 0.32 * hf, 0.3 * wf, 0.3 * wf),
    ]


def _clothing_tone(rng: np.random.Generator) -> float:
    """Grey level of a garment: mostly dark clothes, sometimes light, never close to the paving's ~168."""
    return float(rng.uniform(25, 95) if rng.random() < 0.7 else rng.uniform(200, 240))


def _walker_sprite(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(value, alpha), each (h, w) float32, of a ~4x7 px pedestrian with its own random head/shirt/trouser pattern."""
    hf, wf = rng.uniform(6.5, 7.5), rng.uniform(3.5, 4.5)
    h, w, cx, cy = _canvas(hf, wf)
    alpha = _coverage(h, w, _person_shapes(hf, wf, cx, cy))
    rows = (np.arange(h) + 0.5)[:, None] * np.ones((1, w))
    head_end, legs_start = cy - 0.32 * hf + 0.3 * wf, cy + 0.2 * hf
    tones = (rng.uniform(30, 110), _clothing_tone(rng), rng.uniform(20, 80))
    value = np.where(rows < head_end, tones[0], np.where(rows < legs_start, tones[1], tones[2]))
    if rng.random() < 0.5:  # striped shirt: per-walker pattern variety, not just a tone
        value += np.where((rows.astype(int) % 2 == 0) & (rows >= head_end) & (rows < legs_start), 40.0, 0.0)
    value += rng.normal(0.0, 10.0, (h, w))
    return np.clip(value, 0, 255).astype(np.float32), alpha


def _cart_sprite(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(value, alpha) of a ~14x10 px cart: bright basket with a dark wire grid, unlike any pedestrian."""
    hf, wf = rng.uniform(9.0, 11.0), rng.uniform(13.0, 15.0)
    h, w, cx, cy = _canvas(hf, wf)
    alpha = _coverage(h, w, [("rect", cx, cy, wf / 2.0, hf / 2.0)])
    yy, xx = np.mgrid[0:h, 0:w]
    grid = (yy % 3 == 0) | (xx % 3 == 0)
    value = np.where(grid, rng.uniform(20, 50), rng.uniform(215, 245)) + rng.normal(0.0, 6.0, (h, w))
    return np.clip(value, 0, 255).astype(np.float32), alpha


def _bike_sprite(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(value, alpha) of a ~5x10 px cyclist (moving vertically): dark wheels at both ends, a rider between."""
    hf, wf = rng.uniform(9.0, 10.5), rng.uniform(4.0, 5.0)
    h, w, cx, cy = _canvas(hf, wf)
    wheel_ry = 0.18 * hf
    shapes = [
        ("ellipse", cx, cy - hf / 2 + wheel_ry, 0.22 * wf, wheel_ry),
        ("ellipse", cx, cy + hf / 2 - wheel_ry, 0.22 * wf, wheel_ry),
        ("ellipse", cx, cy, wf / 2.0, 0.3 * hf),
    ]
    alpha = _coverage(h, w, shapes)
    rows = (np.arange(h) + 0.5)[:, None] * np.ones((1, w))
    rider = np.abs(rows - cy) < 0.3 * hf
    value = np.where(rider, _clothing_tone(rng), 15.0) + rng.normal(0.0, 8.0, (h, w))
    return np.clip(value, 0, 255).astype(np.float32), alpha


SPRITES = {"walker": _walker_sprite, "crosser": _walker_sprite, "bike": _bike_sprite, "cart": _cart_sprite}
