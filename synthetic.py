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
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import scipy.io

from errors import FFPError
from utils.files import install_folder, remove_dead_staging, staging_folder

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


def _walkway_x(size: tuple[int, int], y: float, frac: float) -> float:
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
            lines.append(((_walkway_x(size, y, 0.0), y), (_walkway_x(size, y, 1.0), y)))
    for frac in (1 / 3, 2 / 3):
        lines.append(((_walkway_x(size, 0, frac), 0.0), (_walkway_x(size, h, frac), float(h))))
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


_SPRITES = {"walker": _walker_sprite, "crosser": _walker_sprite, "bike": _bike_sprite, "cart": _cart_sprite}


# ----------------------------------------------------------------------------------------------- motion planning


def _direction(rng: np.random.Generator, speed: tuple[float, float], max_deg: float, vertical: bool) -> np.ndarray:
    """(vx, vy) px/frame: random speed in `speed`, heading within ±max_deg of the vertical (or horizontal) axis,
    either way along it."""
    s = rng.uniform(*speed)
    a = math.radians(rng.uniform(-max_deg, max_deg))
    sign = 1.0 if rng.random() < 0.5 else -1.0
    along, across = sign * s * math.cos(a), s * math.sin(a)
    return np.array([across, along]) if vertical else np.array([along, across])


def _entry_point(
    rng: np.random.Generator, size: tuple[int, int], box: tuple[int, int], v: np.ndarray, vertical: bool
) -> tuple[float, float]:
    """Centre where an object of box (h, w) enters the frame moving with v: just ENTRY_OVERLAP px inside the
    edge it comes from, at a random place along that edge (on the walkway for vertical movers)."""
    (h, w), (bh, bw) = size, box
    if vertical:
        down = v[1] > 0
        y = -bh / 2.0 + ENTRY_OVERLAP if down else h + bh / 2.0 - ENTRY_OVERLAP
        return _walkway_x(size, 0.0 if down else h, rng.uniform(0.1, 0.9)), y
    x = -bw / 2.0 + ENTRY_OVERLAP if v[0] > 0 else w + bw / 2.0 - ENTRY_OVERLAP
    return x, rng.uniform(0.3 * h, 0.8 * h)


def _spawn(
    rng: np.random.Generator,
    size: tuple[int, int],
    kind: str,
    start: int,
    speed: tuple[float, float],
    max_deg: float,
    vertical: bool = True,
) -> Track:
    """A new object of `kind` entering the frame at frame `start`."""
    value, alpha = _SPRITES[kind](rng)
    v = _direction(rng, speed, max_deg, vertical)
    origin = _entry_point(rng, size, alpha.shape, v, vertical)
    return Track(kind, kind != "walker", start, origin, tuple(v), value, alpha)


def _initial_walker(rng: np.random.Generator, size: tuple[int, int]) -> Track:
    """A walker already on screen at frame 0, so videos start populated rather than empty."""
    track = _spawn(rng, size, "walker", 0, WALKER_SPEED, WALKER_MAX_ANGLE_DEG)
    y = rng.uniform(4.0, size[0] - 4.0)
    origin = (_walkway_x(size, y, rng.uniform(0.1, 0.9)), y)
    return Track(track.kind, False, 0, origin, track.velocity, track.value, track.alpha)


def _plan_walkers(rng: np.random.Generator, n_frames: int, size: tuple[int, int]) -> list[Track]:
    """Normal pedestrians: start with 4-6 on screen, then spawn entrants so ON_SCREEN[0]..ON_SCREEN[1] stay visible."""
    tracks = [_initial_walker(rng, size) for _ in range(rng.integers(4, 7))]
    visible = np.stack([t.visible(n_frames, size) for t in tracks])
    for frame in range(1, n_frames):
        count = int(visible[:, frame].sum())
        if count < ON_SCREEN[0] or (count < ON_SCREEN[1] and rng.random() < SPAWN_PROB):
            tracks.append(_spawn(rng, size, "walker", frame, WALKER_SPEED, WALKER_MAX_ANGLE_DEG))
            visible = np.vstack([visible, tracks[-1].visible(n_frames, size)])
    return tracks


def _plan_anomaly(rng: np.random.Generator, n_frames: int, size: tuple[int, int], kind: str) -> list[Track]:
    """The anomalous objects of a test video. Each enters at a frame >= 0.15*n_frames, so earlier frames are
    normal; bikes come in two bursts, which usually gives two abnormal intervals (K=2)."""

    def start(lo: float, hi: float) -> int:
        return max(1, int(rng.uniform(lo, hi) * n_frames))

    if kind == "bike":
        return [
            _spawn(rng, size, "bike", start(lo, hi), BIKE_SPEED, ANOMALY_MAX_ANGLE_DEG)
            for lo, hi in ((0.15, 0.3), (0.6, 0.75))
        ]
    if kind == "cart":
        return [_spawn(rng, size, "cart", start(0.2, 0.4), CART_SPEED, ANOMALY_MAX_ANGLE_DEG)]
    if kind == "crosser":
        return [_spawn(rng, size, "crosser", start(0.2, 0.45), CROSSER_SPEED, ANOMALY_MAX_ANGLE_DEG, vertical=False)]
    raise FFPError(f"synthetic anomaly kind {kind!r}: expected one of {ANOMALY_KINDS} or None")


def plan_video(
    rng: np.random.Generator, n_frames: int, size: tuple[int, int] = SYNTHETIC_VIDEO_SIZE, anomaly: str | None = None
) -> list[Track]:
    """All objects of one video: walkers, plus the anomaly of kind `anomaly` ('bike'|'cart'|'crosser') if given."""
    tracks = _plan_walkers(rng, n_frames, size)
    return tracks + (_plan_anomaly(rng, n_frames, size, anomaly) if anomaly else [])


# ----------------------------------------------------------------------------------------------- rendering


def _shifted_sprite(track: Track, x0: float, y0: float) -> tuple[int, int, np.ndarray]:
    """Bilinearly place the sprite with its top-left at sub-pixel (x0, y0): returns integer top-left (ix, iy)
    and a (2, h+1, w+1) stack of premultiplied value and alpha, so edges move smoothly, not in 1-px jumps."""
    ix, iy = math.floor(x0), math.floor(y0)
    fx, fy = x0 - ix, y0 - iy
    sprite = np.pad(np.stack([track.value * track.alpha, track.alpha]), ((0, 0), (0, 1), (0, 1)))
    sprite = (1 - fx) * sprite + fx * np.roll(sprite, 1, axis=2)  # the zero pad column rolls in on the left
    sprite = (1 - fy) * sprite + fy * np.roll(sprite, 1, axis=1)
    return ix, iy, sprite


def _composite(canvas: np.ndarray, track: Track, center: np.ndarray) -> np.ndarray | None:
    """Draw `track` centred at (x, y) `center` over `canvas` (H, W) float32 in place ("over" blending).
    Returns the object's (H, W) coverage (0..1), or None if nothing of it lands in the frame."""
    h, w = track.alpha.shape
    ix, iy, sprite = _shifted_sprite(track, center[0] - w / 2.0, center[1] - h / 2.0)
    y0, x0 = max(iy, 0), max(ix, 0)
    y1, x1 = min(iy + h + 1, canvas.shape[0]), min(ix + w + 1, canvas.shape[1])
    if y0 >= y1 or x0 >= x1:
        return None
    value, alpha = sprite[:, y0 - iy : y1 - iy, x0 - ix : x1 - ix]
    canvas[y0:y1, x0:x1] = canvas[y0:y1, x0:x1] * (1.0 - alpha) + value
    coverage = np.zeros(canvas.shape, dtype=np.float32)
    coverage[y0:y1, x0:x1] = alpha
    return coverage


def _render_frame(
    background: np.ndarray, tracks: list[Track], centers: list[np.ndarray], frame: int, alive: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One noiseless frame (H, W) float32 and its anomaly coverage (H, W) float32 0..1.
    Walkers lower in the image are nearer the camera so they are drawn later (on top); anomalies go last so
    their mask is what is actually seen."""
    canvas = background.copy()
    anomaly = np.zeros_like(background)
    order = sorted(np.flatnonzero(alive[:, frame]), key=lambda i: (tracks[i].abnormal, centers[i][frame, 1]))
    for i in order:
        coverage = _composite(canvas, tracks[i], centers[i][frame])
        if coverage is not None and tracks[i].abnormal:
            anomaly = np.maximum(anomaly, coverage)
    return canvas, anomaly


def render_video(
    background: np.ndarray,
    tracks: list[Track],
    n_frames: int,
    rng: np.random.Generator | None = None,
    noise_sigma: float = NOISE_SIGMA,
) -> tuple[np.ndarray, np.ndarray]:
    """Render `tracks` over `background` ((H, W) float32 0..255) for frames 0..n_frames-1.

    Returns frames (T, H, W) uint8 and masks (T, H, W) uint8 (255 where an abnormal object's coverage is
    >= MASK_ALPHA, else 0). Gaussian sensor noise of std `noise_sigma` grey levels is drawn from `rng`
    (no noise when rng is None).
    """
    size = background.shape
    centers = [t.centers(n_frames) for t in tracks]
    alive = np.stack([t.visible(n_frames, size) for t in tracks]) if tracks else np.zeros((0, n_frames), bool)
    frames = np.empty((n_frames, *size), dtype=np.float32)
    masks = np.empty((n_frames, *size), dtype=np.uint8)
    for f in range(n_frames):
        frames[f], coverage = _render_frame(background, tracks, centers, f, alive)
        masks[f] = np.where(coverage >= MASK_ALPHA, 255, 0)
    if rng is not None and noise_sigma > 0:
        frames += noise_sigma * rng.standard_normal(frames.shape, dtype=np.float32)
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8), masks


# ----------------------------------------------------------------------------------------------- videos & labels


def anomaly_kind(test_index: int) -> str:
    """Anomaly kind of the 0-based test video `test_index`: the kinds cycle so every dataset mixes them."""
    return ANOMALY_KINDS[test_index % len(ANOMALY_KINDS)]


def _video_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """Independent stream per (seed, split, video), so changing the video counts never changes other videos."""
    return np.random.default_rng([seed, {"training": 1, "testing": 2}[split], index])


def generate_video(
    seed: int = 0,
    split: str = "testing",
    index: int = 0,
    n_frames: int = 120,
    size: tuple[int, int] = SYNTHETIC_VIDEO_SIZE,
    background: np.ndarray | None = None,
) -> SyntheticVideo:
    """Generate video `index` (0-based) of `split` ('training' | 'testing') in memory, exactly as
    `ensure_synthetic` writes it. Pass `background` (from make_background(seed, size)) to skip rebuilding it."""
    if split not in ("training", "testing"):
        raise FFPError(f"synthetic split {split!r}: expected 'training' or 'testing'")
    min_frames = MIN_FRAMES if split == "testing" else 1
    if n_frames < min_frames:
        raise FFPError(f"synthetic {split} video: n_frames={n_frames}, expected >= {min_frames}")
    background = make_background(seed, size) if background is None else background
    rng = _video_rng(seed, split, index)
    kind = anomaly_kind(index) if split == "testing" else None
    tracks = plan_video(rng, n_frames, size, kind)
    frames, masks = render_video(background, tracks, n_frames, rng)
    # numpy's stubs type ndarray.any(axis=1) as "bool scalar or array"; on this 2-D array it is an array
    labels: np.ndarray = masks.reshape(n_frames, -1).any(axis=1).astype(np.int64)  # type: ignore[assignment]
    if kind is not None and not 0 < labels.sum() < n_frames:
        # The anomaly schedule guarantees both kinds of frame for n_frames >= MIN_FRAMES; never write a bad gt.
        raise RuntimeError(
            f"synthetic generator bug: test video {index} (seed {seed}) has {labels.sum()} "
            f"abnormal frames of {n_frames}"
        )
    return SyntheticVideo(frames, masks, labels, tracks, kind)


def labels_to_intervals(labels: np.ndarray) -> np.ndarray:
    """(T,) 0/1 frame labels -> (2, K) int32 abnormal intervals, row 0 starts, row 1 ends, 1-based inclusive."""
    padded = np.concatenate([[0], np.asarray(labels).astype(np.int8) != 0, [0]]).astype(np.int8)
    edges = np.diff(padded)
    starts = np.flatnonzero(edges == 1) + 1  # +1: 1-based
    ends = np.flatnonzero(edges == -1)  # index after the run, 0-based == last frame, 1-based
    return np.stack([starts, ends]).astype(np.int32)


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
