"""Synthetic videos: walkers and one anomaly kind planned as constant-velocity tracks, rendered frame by frame with
their labels and pixel masks."""

from __future__ import annotations

import math

import numpy as np

from errors import FFPError

from .scene import (
    ANOMALY_KINDS,
    ANOMALY_MAX_ANGLE_DEG,
    BIKE_SPEED,
    CART_SPEED,
    CROSSER_SPEED,
    ENTRY_OVERLAP,
    MASK_ALPHA,
    MIN_FRAMES,
    NOISE_SIGMA,
    ON_SCREEN,
    SPAWN_PROB,
    SPRITES,
    SYNTHETIC_VIDEO_SIZE,
    WALKER_MAX_ANGLE_DEG,
    WALKER_SPEED,
    SyntheticVideo,
    Track,
    make_background,
    walkway_x,
)

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
        return walkway_x(size, 0.0 if down else h, rng.uniform(0.1, 0.9)), y
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
    value, alpha = SPRITES[kind](rng)
    v = _direction(rng, speed, max_deg, vertical)
    origin = _entry_point(rng, size, alpha.shape, v, vertical)
    return Track(kind, kind != "walker", start, origin, tuple(v), value, alpha)


def _initial_walker(rng: np.random.Generator, size: tuple[int, int]) -> Track:
    """A walker already on screen at frame 0, so videos start populated rather than empty."""
    track = _spawn(rng, size, "walker", 0, WALKER_SPEED, WALKER_MAX_ANGLE_DEG)
    y = rng.uniform(4.0, size[0] - 4.0)
    origin = (walkway_x(size, y, rng.uniform(0.1, 0.9)), y)
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
