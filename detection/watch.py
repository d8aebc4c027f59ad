"""Watching a live source: score frames as they arrive, write rows and events the moment they exist.

    with LiveReader(...) as reader, LiveFiles(out, settings) as files:
        result = watch(predictor, reader, norm_stream, settings, files, stop)

Every window is in_frames + 1 consecutive frames of one run at the model's frame rate (`dataset.live`); the
score is stream mode's z-score of −PSNR under the training statistics (`norm_stream`), final the moment the frame
is predicted. Alarm frames merge into events exactly as in the offline report (`EventTracker` = `merge_events`),
counted on the model's timeline (a frame every 1/fps s; a break in the source advances it by the time lost), so
--event_gap / --min_event mean the same for a file and a camera. Outputs, all in the result folder while it runs:
  scores.csv      frame, time (ISO 8601, local), seconds, psnr, score, above_threshold; flushed batch by batch
  events.jsonl    one JSON object per event, appended and flushed when the event ends (EVENT_FIELDS)
  events/         event_NNNN.jpg: the event's peak frame beside its error heatmap and overlay
  heatmap.mp4     (--save_video) frame | heatmap | overlay + the last CURVE_SECONDS of the score, written on the
                  fly with a heatmap scale fixed from the first scored batch (99.5th percentile of its errors;
                  summary.json records it) so no frame waits for it
Memory: a batch of frames, one open event's peak images, and 24 bytes per scored frame for the final report.
"""

from __future__ import annotations

import array
import csv
import functools
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from dataset.live import LIVE_SAME_RATE, LiveFrame, LiveReader
from dataset.resample import rate_note
from detection.events import Event, EventTracker
from detection.on_event import OnEventRunner
from detection.scenes import SceneChange, SceneTracker, background_db
from errors import write_error
from evaluation.video import HeatmapVideoWriter, ScoreStrip, VmaxEstimator, heatmap_panels, panel_size_for
from inference.runtime import Predictor
from live_targets import describe_target
from utils.files import atomic_write_bytes
from utils.threads import recheck_threads

LIVE_CSV_HEADER = ("frame", "time", "seconds", "psnr", "score", "above_threshold")
CURVE_SECONDS = 30.0  # the live video's score curve shows this much of the past
LATENCY_SAMPLES = 10_000  # recent frames whose arrival-to-row latency the summary describes


class LiveScorer(Protocol):
    """Stream mode's normalisation as the live loop uses it (detection.normalise.Normaliser)."""

    def stream(self, psnr: np.ndarray, base: np.ndarray | None = None) -> np.ndarray:
        """(base − PSNR) / std of (B,) PSNR dB and baselines (B,) dB: (B,) float64 scores."""
        ...

    def tracker(self, fps: float, in_frames: int, threshold: float) -> SceneTracker:
        """A SceneTracker for one stream (its baseline starts at the training mean)."""
        ...


@dataclass(frozen=True)
class WatchSettings:
    """What the live loop needs besides the model: threshold on the score; gap_frames/min_frames of the events
    (model-rate frames); fps: the timeline's frames per second (the model's rate); batch_size: frames scored at
    most per step; in_frames: frames a window predicts from; save_video; on_event: argv of the --on_event command
    or None; duration_s: stop after this many seconds (None: until the source ends or a signal)."""

    threshold: float
    gap_frames: int
    min_frames: int
    fps: float
    batch_size: int
    in_frames: int
    save_video: bool = False
    on_event: tuple[str, ...] | None = None
    duration_s: float | None = None


@dataclass
class _Moment:
    """One scored frame as events need it: source number, seconds, wall time, score; images for a peak."""

    number: int
    seconds: float
    wall: float
    score: float
    rgb: np.ndarray | None = None
    err: np.ndarray | None = None


@dataclass
class _OpenEvent:
    first: _Moment
    last: _Moment
    peak: _Moment


def iso_time(wall: float) -> str:
    """Unix time (s) -> local ISO 8601 with milliseconds and UTC offset, e.g. '2026-12-03T13:05:01.250+00:00'."""
    return datetime.fromtimestamp(wall).astimezone().isoformat(timespec="milliseconds")


class LiveFiles:
    """The files a live run writes as it goes: scores.csv, events.jsonl, events/*.jpg and the heatmap video.

    Write errors (a full disk) raise FFPError naming the file. Used as a context manager; on exit every file is
    closed and complete (the video is finished, or discarded when no frame reached it).
    """

    def __init__(self, out: Path, settings: WatchSettings, size: tuple[int, int], score_range: tuple[float, float]):
        self.out, self.settings, self.size, self.score_range = out, settings, size, score_range
        self.panel_size = panel_size_for(size)
        self.video: HeatmapVideoWriter | None = None
        self.video_name: str | None = None
        self.vmax: float | None = None
        self.n_events = 0

    def __enter__(self) -> LiveFiles:
        try:
            self._csv_file = open(self.out / "scores.csv", "w", newline="")
            self._events_file = open(self.out / "events.jsonl", "w")
            (self.out / "events").mkdir(exist_ok=True)
        except OSError as exc:
            raise write_error(exc) from None
        self._csv = csv.writer(self._csv_file, lineterminator="\n")
        self.rows([LIVE_CSV_HEADER])
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if self.video is not None:
                if exc_type is None:
                    self.video.close()
                else:
                    self.video.abort()
        finally:
            self._csv_file.close()
            self._events_file.close()

    def _guard(self, path: Path, write: Callable[[], None]) -> None:
        try:
            write()
        except OSError as exc:
            raise write_error(exc, path) from None

    def rows(self, rows) -> None:
        """Append scores.csv rows and flush them (a reader tailing the file sees each batch at once)."""

        def write() -> None:
            self._csv.writerows(rows)
            self._csv_file.flush()

        self._guard(self.out / "scores.csv", write)

    def error_scale(self, err: np.ndarray) -> None:
        """Fix the heatmap scale from the first scored batch's error maps (B×H×W); later calls do nothing."""
        if self.vmax is None:
            estimate = VmaxEstimator()
            estimate.add(err)
            self.vmax = estimate.value()

    def add_video_frame(self, rgb: np.ndarray, err: np.ndarray, score: float, number: int) -> None:
        """Append one frame to heatmap.mp4 (H×W×3 uint8 RGB, H×W squared error), opening it at the first."""
        if self.video is None:
            assert self.vmax is not None, "error_scale() comes first"
            self.video_name = "heatmap.mp4"
            self.video = HeatmapVideoWriter(
                self.out / self.video_name,
                self.settings.fps,
                vmax=self.vmax,
                size=self.size,
                strip=ScoreStrip(
                    max(2, int(CURVE_SECONDS * self.settings.fps)),
                    self.score_range,
                    self.settings.threshold,
                    rolling=True,
                ),
            )
        self.video.add(rgb.astype(np.float32) / 255.0, err, score, number=number)

    def event(self, record: dict, peak: _Moment) -> dict:
        """Write the event's snapshot and append its line to events.jsonl (flushed); returns the record with the
        snapshot's path."""
        self.n_events += 1
        name = f"events/event_{self.n_events:04d}.jpg"
        record = {"event": self.n_events, **record, "snapshot": name}
        if peak.rgb is not None and peak.err is not None:
            assert self.vmax is not None  # fixed by the first scored batch, before any event
            image = heatmap_panels(peak.rgb.astype(np.float32) / 255.0, peak.err, self.vmax, self.panel_size)
            ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
            if ok:
                self._guard(self.out / name, lambda: atomic_write_bytes(self.out / name, jpeg.tobytes()))
        else:
            record["snapshot"] = None

        def write() -> None:
            self._events_file.write(json.dumps(record) + "\n")
            self._events_file.flush()

        self._guard(self.out / "events.jsonl", write)
        return record


@dataclass
class WatchResult:
    """What a live run scored: per scored frame its source number, seconds and PSNR / score; the events; how it
    ended ('signal N', 'duration', 'source ended', 'source lost'), and arrival-to-row latencies (s, recent)."""

    numbers: array.array = field(default_factory=lambda: array.array("q"))
    seconds: array.array = field(default_factory=lambda: array.array("d"))
    psnr: array.array = field(default_factory=lambda: array.array("f"))
    scores: array.array = field(default_factory=lambda: array.array("d"))
    events: list[Event] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    scene_changes: list[SceneChange] = field(default_factory=list)
    ended_by: str = "source ended"
    signal: int = 0
    latencies: deque = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))
    started: float = field(default_factory=time.monotonic)

    def latency_summary(self) -> dict:
        """Median and 95th percentile of arrival-to-row latency (ms) over the recent frames."""
        if not self.latencies:
            return {}
        values = np.asarray(self.latencies) * 1000
        return {"median_ms": float(np.median(values)), "p95_ms": float(np.percentile(values, 95))}


class _Timeline:
    """Model-rate frame index of each scored frame: +1 within a run, + the time lost (in periods) across a break."""

    def __init__(self, fps: float):
        self.fps, self.index = fps, -1
        self.last: LiveFrame | None = None

    def step(self, frame: LiveFrame) -> int:
        if self.last is None:
            self.index = 0
        elif frame.run == self.last.run:
            self.index += 1
        else:
            self.index += max(1, round((frame.seconds - self.last.seconds) * self.fps))
        self.last = frame
        return self.index


class _EventBook:
    """EventTracker on the model timeline, with each open event's first/last/peak moments, emitting records; and the
    SceneTracker `scenes`, whose settled scene changes are emitted as records of kind 'scene_change'."""

    def __init__(
        self,
        settings: WatchSettings,
        files: LiveFiles,
        result: WatchResult,
        runner: OnEventRunner | None,
        scenes: SceneTracker,
        log: Callable[[str], None],
    ):
        self.settings, self.files, self.result, self.runner = settings, files, result, runner
        self.tracker = EventTracker(settings.threshold, settings.fps, settings.gap_frames, settings.min_frames)
        self.open: _OpenEvent | None = None
        self.scenes, self.log = scenes, log
        self.said = 0  # scene changes emitted so far
        self.unscored: list[float] = []  # wall times of the first and the last unscored frame of an open change

    def unscored_frame(self, wall: float) -> None:
        """A frame of a scene change went by at Unix time `wall` (s)."""
        self.unscored = [self.unscored[0] if self.unscored else wall, wall]

    def scene_changes(self) -> None:
        """Emit the scene changes that settled (or, at the end, were closed) since the last call: a note, a record of
        kind 'scene_change' (with the wall times of its first and last frame) and the --on_event call."""
        for change in self.scenes.changes[self.said :]:
            first, last = self.unscored or [time.time(), time.time()]
            timed = {"start": iso_time(first), "end": iso_time(last + 1.0 / self.settings.fps), **change.as_dict()}
            self.result.records.append(self.files.event(timed, _Moment(change.first_frame, change.start_s, first, 0.0)))
            self.log(f"note: {change.describe()}")
            if self.runner is not None:
                self.runner.submit(self.result.records[-1])
            self.unscored = []
        self.said = len(self.scenes.changes)

    def add(self, index: int, moment: _Moment, rgb: np.ndarray, err: Callable[[], np.ndarray]) -> None:
        ended = self.tracker.add(index, moment.score)
        if ended is not None and self.open is not None:
            self._emit(ended, self.open)
        if moment.score > self.settings.threshold:
            if self.tracker.opened_at == index:
                self.open = _OpenEvent(moment, moment, moment)
            assert self.open is not None
            self.open.last = moment
            if self.tracker.peak_is_new:
                moment.rgb, moment.err = rgb.copy(), err()
                self.open.peak = moment

    def finish(self) -> None:
        ended = self.tracker.finish()
        if ended is not None and self.open is not None:
            self._emit(ended, self.open)
        self.scenes.finish()
        self.scene_changes()

    def _emit(self, ended: Event, moments: _OpenEvent) -> None:
        first, last, peak = moments.first, moments.last, moments.peak
        end_s = last.seconds + 1.0 / self.settings.fps
        event = Event(first.number, last.number, peak.number, peak.score, ended.n_alarm_frames, first.seconds, end_s)
        record = {
            "kind": "anomaly",
            "start": iso_time(first.wall),
            "end": iso_time(last.wall + 1.0 / self.settings.fps),
            "start_s": round(first.seconds, 3),
            "end_s": round(end_s, 3),
            "duration_s": round(end_s - first.seconds, 3),
            "first_frame": first.number,
            "last_frame": last.number,
            "peak_frame": peak.number,
            "peak_time": iso_time(peak.wall),
            "peak_score": round(peak.score, 4),
            "n_alarm_frames": ended.n_alarm_frames,
            "threshold": self.settings.threshold,
        }
        record = self.files.event(record, peak)
        self.result.events.append(event)
        self.result.records.append(record)
        if self.runner is not None:
            self.runner.submit(record)
        self.open = None


def watch(
    predictor: Predictor,
    reader: LiveReader,
    scorer: LiveScorer,
    settings: WatchSettings,
    files: LiveFiles,
    stopped: Callable[[], int],
    log: Callable[[str], None] = print,
) -> WatchResult:
    """Score a live source until it ends, is lost, --duration passes or `stopped()` returns a signal number.

    scorer: stream mode's normalisation (`LiveScorer`), with the scene tracker that re-settles its baseline after a
    scene change (`detection.scenes`). Returns the WatchResult; every event still open at the end is closed and
    written. The caller raises reader.error.
    """
    result = WatchResult()
    runner = OnEventRunner(settings.on_event, log) if settings.on_event else None
    scenes = scorer.tracker(settings.fps, settings.in_frames, settings.threshold)
    book = _EventBook(settings, files, result, runner, scenes, log)
    timeline, t, rate_said = _Timeline(settings.fps), settings.in_frames, False
    history: list[LiveFrame] = []
    try:
        while not _time_to_stop(stopped, settings, result):
            frames = reader.take(settings.batch_size, t)
            if threads_line := recheck_threads():
                log(threads_line)
            rate_said = rate_said or _rate_said(reader, log)
            if frames is None:
                result.ended_by = "source lost" if reader.error else "source ended"
                break
            if not frames:
                continue  # nothing arrived for a moment (a reconnection): look at signals and clocks again
            seq = history + frames
            targets = [i for i in range(max(t, len(history)), len(seq)) if seq[i - t].run == seq[i].run]
            if targets:
                _score_batch(predictor, seq, targets, scorer, book, timeline)
            history = seq[-t:]
        book.finish()
        result.scene_changes = scenes.changes
    finally:
        if runner is not None:
            runner.close()
    return result


def _time_to_stop(stopped: Callable[[], int], settings: WatchSettings, result: WatchResult) -> bool:
    """Whether a signal came (`stopped()`) or --duration passed; says which in `result`."""
    if signum := stopped():
        result.ended_by, result.signal = f"signal {signum}", signum
        return True
    if settings.duration_s is not None and time.monotonic() - result.started >= settings.duration_s:
        result.ended_by = "duration"
        return True
    return False


def _rate_said(reader: LiveReader, log: Callable[[str], None]) -> bool:
    """Once the source's frame rate is measured, say how it compares with the model's (when it matters); True from
    then on."""
    source_fps = reader.stats.source_fps()
    if source_fps is None:
        return False
    note = rate_note(source_fps, reader.fps, describe_target(reader.target), LIVE_SAME_RATE)
    if note:
        log(f"note: {note}")
    return True


def _score_batch(
    predictor: Predictor, seq: list[LiveFrame], targets: list[int], scorer: LiveScorer, book: _EventBook, timeline
) -> None:
    """Predict the targets of `seq`; the frames the scene tracker scores get their rows, feed events and the video;
    a scene change that settled is emitted."""
    settings, files, result = book.settings, book.files, book.result
    pred = predictor.targets(np.stack([f.rgb for f in seq]), targets)
    error_maps = pred.error_maps()  # every frame's: its background error tells a change of the whole scene
    frames = [seq[i] for i in targets]
    scored, base, _ = book.scenes.steps(
        [f.number for f in frames], [f.seconds for f in frames], pred.psnr, background_db(error_maps)
    )
    kept = np.flatnonzero(scored)
    psnr = pred.psnr[kept]
    scores = scorer.stream(psnr, base[kept])
    if files.vmax is None and kept.size:
        files.error_scale(error_maps[kept])
    rows, at = [], dict(zip(kept.tolist(), range(len(kept))))
    for k, frame in enumerate(frames):
        index = timeline.step(frame)  # every frame, scored or not: events count time as batch mode counts numbers
        if k not in at:
            book.unscored_frame(frame.wall)
            continue
        j = at[k]
        rows.append(
            (
                frame.number,
                iso_time(frame.wall),
                f"{frame.seconds:.3f}",
                f"{psnr[j]:.6f}",
                f"{scores[j]:.6f}",
                int(scores[j] > settings.threshold),
            )
        )
        moment = _Moment(frame.number, frame.seconds, frame.wall, float(scores[j]))
        book.add(index, moment, frame.rgb, functools.partial(np.copy, error_maps[k]))
        if settings.save_video:
            files.add_video_frame(frame.rgb, error_maps[k], float(scores[j]), frame.number)
        result.numbers.append(frame.number)
        result.seconds.append(frame.seconds)
        result.psnr.append(float(psnr[j]))
        result.scores.append(float(scores[j]))
    book.scene_changes()  # after this batch's events: records stay in time order
    files.rows(rows)
    now = time.monotonic()
    result.latencies.extend(now - seq[i].arrival for i in targets)
