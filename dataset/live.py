"""Live sources (a stream URL or a camera), read by a thread, resampled to the model's frame rate.

    target = live_target("http://127.0.0.1:8099/stream.mjpg")   # or "rtsp://…", "0", "/dev/video0"; None: a path
    with LiveReader(target, ReaderSettings(height=256, width=256, fps=10.0), RetryPolicy()) as reader:
        while (frames := reader.take(max_batch=8, history=4)) is not None:   # [] when none came within 0.5 s
            ...                                     # LiveFrames at the model's rate; a new `run` marks a break

OpenCV's FFmpeg backend opens whatever FFmpeg does (rtsp, http(s) incl. MJPEG over HTTP, udp, tcp, rtmp, srt);
cameras open through OpenCV's default backend (V4L2 on Linux).

Why a thread: a camera does not wait. If frames were read only when the model asks for them, FFmpeg's and the
camera's buffers would fill up and every score would be for a frame seconds old. The reader decodes
continuously, keeps only the frames on the model's timeline (`Resampler`) in a short queue, and the scorer
takes the newest ones; when scoring is slower than the camera, whole windows are skipped, never frames
inside a window, and the skipped windows are counted (`LiveReader.dropped`).

Units and numbers: `LiveFrame.number` counts the frames the source delivered since the start (0-based), across
reconnects (the frames a camera sent while disconnected are unknown: the numbering continues, and each outage is
reported with its times); `seconds` is the frame's time since the first frame (`FrameClock`: the stream's own
timestamps where they are real, arrival times otherwise); `wall` its arrival as Unix time.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

from errors import FFPError
from live_targets import RETRY_ATTEMPTS, describe_target

from .opencv_log import opencv_log_at_most
from .preprocess import prepare_frame
from .resample import Resampler, needs_resampling

OPEN_TIMEOUT_S = 5.0  # FFmpeg gives up on a server that accepts the connection and never answers
READ_TIMEOUT_S = 5.0  # and on a stream that stops sending frames
CONTINUITY = 1.5  # a step longer than this many frame periods breaks a window (a gap in the source)
RATE_FRAMES = 64  # the source's frame rate is measured over its last this many frames
RATE_MIN_FRAMES = 17  # and first known after this many
RATE_SETTLE_S = 1.0  # frames of a connection's first second are not measured: they come in bursts from its buffers
TRUST_FRAMES = 10  # frames that decide whether a connection's own timestamps are real (FrameClock)
LIVE_SAME_RATE = 0.15  # a live source measured within 15 % of the model's rate is at that rate (arrival jitter)


@dataclass
class LiveFrame:
    """One frame kept on the model's timeline.

    number: frames the source delivered before it since the start (0-based, continuing across reconnects);
    seconds: its time since the first frame (`FrameClock`); wall: arrival as Unix time (s);
    rgb: height×width×3 uint8 RGB at the model's size (`prepare_frame`); arrival: time.monotonic() at arrival;
    run: changes at every break in continuity (a reconnect, a stall, skipped windows), so the frames of one run are
    consecutive frames at the model's rate.
    """

    number: int
    seconds: float
    wall: float
    rgb: np.ndarray
    arrival: float = 0.0  # time.monotonic() when it arrived (latency is measured from here)
    run: int = 0


@dataclass
class RetryPolicy:
    """How a lost or unopenable live source is retried: `attempts` reconnections in a row (without a frame in
    between) with waits of first_wait_s, doubling up to max_wait_s; then the source counts as lost."""

    attempts: int = RETRY_ATTEMPTS
    first_wait_s: float = 0.5
    max_wait_s: float = 10.0

    def waits(self) -> Iterator[float]:
        """The `attempts` waits before each retry, in seconds."""
        wait = self.first_wait_s
        for _ in range(self.attempts):
            yield wait
            wait = min(2 * wait, self.max_wait_s)


@dataclass
class ReaderStats:
    """What the reader saw: frames delivered by the source and kept on the model's timeline, connections,
    reconnect gaps (seconds of each outage, (from, to)), and the source's own frame rate (median interval)."""

    delivered: int = 0
    kept: int = 0
    first_arrival: float = 0.0  # time.monotonic() of the first frame
    connects: int = 0
    outages: list[tuple[float, float]] = field(default_factory=list)
    # steps (s) between the last RATE_FRAMES measured frames of one connection: an outage is never a step
    steps: collections.deque = field(default_factory=lambda: collections.deque(maxlen=RATE_FRAMES - 1))
    last_measured: float | None = None  # the time of the last measured frame of this connection

    def new_connection(self) -> None:
        """A (re)connection: its first measured frame does not follow the last one before it."""
        self.last_measured = None

    def measure(self, t: float) -> None:
        """Measure the frame at `t` seconds (after its connection's first RATE_SETTLE_S)."""
        if self.last_measured is not None:
            self.steps.append(t - self.last_measured)
        self.last_measured = t

    def source_fps(self) -> float | None:
        """Frames per second of the source over its last RATE_FRAMES measured frames (steps / the time they span,
        outages left out); None before RATE_MIN_FRAMES of them."""
        span = sum(self.steps)
        if len(self.steps) < RATE_MIN_FRAMES - 1 or span <= 0:
            return None
        return len(self.steps) / span


class FrameClock:
    """Frame times in seconds since the first frame, non-decreasing and continuous across reconnects.

    A live source's own timestamps are used where they are real (MPEG-TS, RTSP), and arrival times otherwise: FFmpeg
    gives MJPEG over HTTP made-up timestamps at 25 fps, and cameras often none. A connection's timestamps count as
    real when, over TRUST_FRAMES frames after its first RATE_SETTLE_S (whose frames arrive in bursts from buffers),
    they advance at the arrival rate within 20 %; until that is known, arrival times are used.
    """

    def __init__(self) -> None:
        self.t0: float | None = None  # monotonic arrival of the very first frame
        self.last = 0.0  # the last time given
        self.last_arrival: float | None = None
        self.new_session()

    def new_session(self) -> None:
        """A (re)connection: its timestamps are judged afresh."""
        self._session_start: float | None = None
        self._probe: list[tuple[float, float]] = []  # (arrival, timestamp ms) after the settle time
        self._real: bool | None = None  # whether this connection's timestamps are real (None: not known yet)
        self._anchor = (0.0, 0.0)  # (time, timestamp ms) where this connection switched to its timestamps

    def time(self, arrival: float, pos_ms: float) -> float:
        """The time of a frame that arrived at `arrival` (time.monotonic()) with stream timestamp `pos_ms`."""
        if self.t0 is None:
            self.t0 = arrival
        if self._session_start is None:
            self._session_start = arrival
        if self._real is None and arrival - self._session_start >= RATE_SETTLE_S:
            self._probe.append((arrival, pos_ms))
            if len(self._probe) >= TRUST_FRAMES:
                (a0, p0), (a1, p1) = self._probe[0], self._probe[-1]
                self._real = a1 > a0 and abs((p1 - p0) / 1000.0 / (a1 - a0) - 1.0) < 0.2
                self._anchor = (self.last, pos_ms)
        if self._real:
            t = self._anchor[0] + (pos_ms - self._anchor[1]) / 1000.0
        else:
            t = arrival - self.t0
        self.last, self.last_arrival = max(t, self.last), arrival
        return self.last


class SourceLost(FFPError):
    """The live source could not be (re)opened within the retry policy."""


def open_capture(target: str | int):
    """An opened cv2.VideoCapture of a URL (FFmpeg, with open/read timeouts) or a camera; None when it fails."""

    with opencv_log_at_most(cv2.utils.logging.LOG_LEVEL_SILENT):
        if isinstance(target, int) or target.startswith("/dev/"):
            capture = cv2.VideoCapture(target)
        else:
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                int(OPEN_TIMEOUT_S * 1000),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                int(READ_TIMEOUT_S * 1000),
            ]
            capture = cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
        if capture.isOpened():
            return capture
    capture.release()
    return None


@dataclass(frozen=True)
class ReaderSettings:
    """What a LiveReader delivers. height, width: the model's frame size; fps: the model's frame rate (None: every
    frame is kept); max_frames: stop after the source delivered this many frames; queue: frames kept waiting at
    most (older ones are dropped: they would only add latency); source_fps: the source's frame rate when the user
    states it (--fps), else measured."""

    height: int
    width: int
    fps: float | None
    max_frames: int | None = None
    queue: int = 64
    source_fps: float | None = None


class LiveReader:
    """A thread reading a live source continuously; the scorer takes runs of consecutive model-rate frames.

    target: URL string or camera index/device (`live_target`); settings: `ReaderSettings`; retry: RetryPolicy;
    log: called with one line per event worth telling (connected, lost, retrying), from the reader thread; opener:
    opens the target (`open_capture`; tests pass their own). Used as a context manager: the thread starts on enter
    and is stopped and joined on exit. `error` holds the SourceLost that ended the reading, if one did.
    """

    def __init__(
        self,
        target: str | int,
        settings: ReaderSettings,
        retry: RetryPolicy,
        log: Callable[[str], None] = print,
        opener: Callable[[str | int], object] = open_capture,
    ):
        self.target, self.height, self.width, self.fps = target, settings.height, settings.width, settings.fps
        self.retry, self.log, self.max_frames, self.opener = retry, log, settings.max_frames, opener
        self.source_fps = settings.source_fps  # the source's rate when the user states it (--fps); else measured
        self.stats = ReaderStats()
        self.dropped = 0  # frames kept on the timeline but never scored: the scorer was behind
        self.error: SourceLost | None = None
        self._queue: collections.deque[LiveFrame] = collections.deque()
        self._queue_max = settings.queue
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._ended = False
        self._ids = itertools.count(1)
        self._run = 0
        self._last_kept: float | None = None  # time of the last frame queued
        self._thread = threading.Thread(target=self._read_all, name="live-reader", daemon=True)

    # --------------------------------------------------------------------- the reader thread
    def __enter__(self) -> LiveReader:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Ask the thread to stop and wait for it (at most the read timeout)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=READ_TIMEOUT_S + 1.0)

    def _read_all(self) -> None:
        # FFmpeg's read timeouts come as OpenCV warnings ("Stream timeout triggered"); the reader says what happened
        # itself (a stall, a reconnect), in its own words.
        with opencv_log_at_most(cv2.utils.logging.LOG_LEVEL_ERROR):
            self._read_connections()

    def _read_connections(self) -> None:
        resampler, clock = Resampler(self.fps), FrameClock()
        try:
            while not self._stop.is_set():
                capture = self._connect(clock.last_arrival)
                if capture is None:
                    return
                clock.new_session()
                self.stats.new_connection()
                try:
                    if self._read_session(capture, clock, resampler):
                        return  # max_frames delivered
                finally:
                    capture.release()
                if not self._stop.is_set():
                    self.log(
                        f"{describe_target(self.target)}: the stream stopped after frame {self.stats.delivered - 1}"
                    )
                    self._new_run()
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def _read_session(self, capture, clock: FrameClock, resampler: Resampler) -> bool:
        """The frames of one connection, until it ends or the reader stops; True when max_frames were delivered."""
        session_start = time.monotonic()
        while not self._stop.is_set():
            ok, bgr = capture.read()
            now, wall = time.monotonic(), time.time()
            if not ok or bgr is None:
                return False
            t = clock.time(now, capture.get(cv2.CAP_PROP_POS_MSEC))
            if not self.stats.delivered:
                self.stats.first_arrival = now
            if now - session_start >= RATE_SETTLE_S:
                self.stats.measure(t)
            number = self.stats.delivered
            self.stats.delivered += 1
            if resampler.keep(t) or not self._faster_than_model():
                self._keep(LiveFrame(number, t, wall, prepare_frame(bgr, self.height, self.width), now))
            if self.max_frames is not None and self.stats.delivered >= self.max_frames:
                return True
        return False

    def _keep(self, frame: LiveFrame) -> None:
        """Queue a frame on the model's timeline; a stall since the last kept frame starts a new run (a window
        would span it)."""
        if self._last_kept is not None and frame.seconds - self._last_kept > self._max_step():
            self._new_run()
        self._last_kept = frame.seconds
        self._put(frame)

    def _faster_than_model(self) -> bool:
        """Whether frames must be resampled: the source measures more than LIVE_SAME_RATE faster than the model.
        Until its rate is measured (RATE_MIN_FRAMES frames after the first RATE_SETTLE_S) every frame is kept: the
        first frames of a connection arrive in bursts, which would look like a fast camera and drop frames of a
        camera at the model's own rate. (A faster camera's first windows are then slower motion: scored lower.)"""
        source = self.source_fps or self.stats.source_fps()
        return needs_resampling(source, self.fps, LIVE_SAME_RATE)

    def _max_step(self) -> float:
        """Longest step (s) between two kept frames of one run: CONTINUITY periods of the slower of the model's
        rate and the source's measured rate (a source slower than the model keeps every frame)."""
        periods = [1.0 / self.fps] if self.fps else []
        source = self.stats.source_fps()
        if source:
            periods.append(1.0 / source)
        return CONTINUITY * max(periods) if periods else float("inf")

    def _connect(self, last_arrival: float | None):
        """An opened capture, retrying with backoff; None when stopped or the policy is spent (then `error`)."""
        name = describe_target(self.target)
        capture = self.opener(self.target)
        waits = self.retry.waits()
        lost_at = time.monotonic()
        while capture is None:
            wait = next(waits, None)
            if wait is None:
                what = "could not be opened" if not self.stats.connects else "was lost and did not come back"
                self.error = SourceLost(
                    f"--video {name} {what} after {self.retry.attempts} retries "
                    f"({time.monotonic() - lost_at:.0f} s; --retries sets how many)"
                )
                return None
            self.log(f"{name}: not answering; retry in {wait:g} s")
            if self._stop.wait(wait):
                return None
            capture = self.opener(self.target)
        self.stats.connects += 1
        if self.stats.connects > 1 and last_arrival is not None:
            self.stats.outages.append((last_arrival, time.monotonic()))
            self.log(f"{name}: reconnected (attempt {self.stats.connects}); frame numbers continue")
        return capture

    def _put(self, frame: LiveFrame) -> None:
        with self._cond:
            if len(self._queue) >= self._queue_max:  # the scorer is far behind: the oldest frame goes
                self._drop_oldest(1)
            frame.run = self._run
            self._queue.append(frame)
            self.stats.kept += 1
            self._cond.notify_all()

    def _new_run(self) -> None:
        """The next frame starts a new run (not continuous with the one before)."""
        with self._cond:
            self._run = next(self._ids)

    def _drop_oldest(self, n: int) -> None:
        """Drop the n oldest queued frames (lock held); the frames of the same run after them start a new one."""
        run = self._queue[0].run
        for _ in range(n):
            self._queue.popleft()
        self.dropped += n
        fresh = next(self._ids)
        for queued in self._queue:
            if queued.run == run:
                queued.run = fresh
        if self._run == run:
            self._run = fresh

    # --------------------------------------------------------------------- the scorer's side
    def take(self, max_batch: int, history: int, timeout: float = 0.5) -> list[LiveFrame] | None:
        """The next frames to score, in arrival order: waits up to `timeout` seconds for one and returns [] when none
        came (so the caller can look at signals and clocks), None once the source ended (or the reader was stopped)
        and nothing is left.

        At most `max_batch` frames, unless the scorer fell behind: when more than max_batch + history frames wait,
        the oldest are dropped (counted in `dropped`, so latency stays about one batch) and max_batch + history are
        returned, the first `history` of them only a window's past. A change of `run` between two frames is a break.
        """
        with self._cond:
            if not self._queue and not self._ended and not self._stop.is_set():
                self._cond.wait(timeout)
            if not self._queue:
                return None if self._ended or self._stop.is_set() else []
            excess = len(self._queue) - (max_batch + history)
            if excess > 0:
                self._drop_oldest(excess)
            n = len(self._queue) if excess > 0 else min(max_batch, len(self._queue))
            return [self._queue.popleft() for _ in range(n)]
