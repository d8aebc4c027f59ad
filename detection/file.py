"""Scoring a video file or a folder of frames: one pass over its frames (PSNR, scores, scores.csv as it goes), then
the report (events, curve, page) and, with --save_video, a second pass writing the heatmap video."""

from __future__ import annotations

import argparse
import csv
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cli import StopRequest, raise_for_signal
from config import Config
from dataset import FrameFolder, Video, VideoFile, frame_number, open_source
from dataset.resample import Continuity, at_model_rate, continuity, holes_note, needs_resampling, video_fps
from detection.events import DEFAULT_EVENT_GAP, DEFAULT_MIN_EVENT, merge_events
from detection.report import (
    DETECT_CSV_HEADER,
    DetectPage,
    ScoredFrames,
    detect_caveats,
    detect_csv_rows,
    write_detect_report,
)
from detection.scenes import background_db
from durations import parse_duration
from errors import FFPError, write_error
from evaluation.scores import flat_videos_note
from evaluation.video import HeatmapVideoWriter, ScoreStrip, VmaxEstimator
from inference.runtime import Predictor
from utils.progress import duration_text
from utils.threads import recheck_threads

from .normalise import Normaliser
from .scored import Scored


@dataclass
class Input:
    """The video to score: its frames (a dataset.Video), frame rate, and the first frame number to score."""

    video: Video
    fps: float
    start: int
    model_fps: float | None = None  # the training footage's rate: a faster input is resampled to it

    def batches(self, predictor: Predictor, cfg: Config, batch_size: int):
        """The input's frame batches (those `predictor` reads), resampled to the model's rate when it is faster."""
        return at_model_rate(predictor.batches(self.video, cfg, batch_size), self.video, self.model_fps, self.fps)

    def scored_fps(self) -> float:
        """Frames per second of the scored stream: the model's rate when the input is resampled to it, else its own."""
        return self.model_fps if self.model_fps and needs_resampling(self.fps, self.model_fps) else self.fps

    def continuity(self) -> Continuity:
        """Where the stream of `batches` breaks (no window spans a break: those targets are not scored)."""
        return continuity(self.video, self.model_fps, self.fps)


def open_input(path: Path, args: argparse.Namespace) -> Input:
    """The --video as a Video (cut to --max_frames), its frame rate (--fps, the container's, or FOLDER_FPS for a
    folder) and the --start frame number."""
    try:
        source = open_source(path)
    except FFPError as exc:
        raise FFPError(f"--video {exc}") from None
    if isinstance(source, FrameFolder) and not len(source):
        raise FFPError(f"--video {path}: the folder holds no frames (.jpg, .png, .tif, .bmp)")
    video = Video(path.stem if isinstance(source, VideoFile) else path.name, source)
    fps = video_fps(video, args.fps)
    start = 0 if args.start is None else frame_number(args.start, video, "--start")
    if args.max_frames is not None:
        video = video.head(args.max_frames)
    return Input(video, fps, start)


@dataclass(frozen=True)
class FileJob:
    """How to score one file besides its frames: the model, the command's config (batch size: `batch_size`, else
    cfg.eval_batch_size), the normalisation and threshold, where the result goes, and the event rule as given
    (--event_gap / --min_event: frames '5' or seconds '0.5s'; None: detection.events' defaults)."""

    predictor: Predictor
    cfg: Config
    norm: Normaliser
    threshold: float
    out: Path
    save_video: bool = False
    batch_size: int | None = None
    event_gap: str | None = None
    min_event: str | None = None

    def batches(self, inp: Input):
        """The input's frame batches for this job's predictor, config and batch size (`Input.batches`)."""
        return inp.batches(self.predictor, self.cfg, self.batch_size or self.cfg.eval_batch_size)


def score_pass(
    job: FileJob,
    batches,
    inp: Input,
    csv_path: Path | None,
    vmax: VmaxEstimator | None = None,
    stop: StopRequest | None = None,
) -> Scored:
    """One pass over a batch stream of `inp` (`inp.batches`): PSNR of every scored frame: number >= inp.start, its
    window spans no break (`Input.continuity`) and it is not part of a scene change (`detection.scenes`).

    csv_path (stream mode): scores.csv rows are appended and flushed batch by batch. vmax: offered every batch's
    error maps (for the heatmap scale). stop: checked after every batch; a signal ends the pass early with
    what was scored. Memory: one batch of frames plus 40 bytes per frame (PSNR, number, baseline, scene, and the
    stream's frame number and time), whatever the length.
    """
    parts: list[tuple[np.ndarray, ...]] = []
    rule = inp.continuity()
    predictor, norm, threshold = job.predictor, job.norm, job.threshold
    tracker = norm.tracker(inp.scored_fps(), predictor.in_frames, threshold)
    with _csv_rows(csv_path) as rows:
        for pred in predictor.stream(batches):
            recheck_threads()  # --threads 0 (auto): follow the other processes' load, every 30 s at most
            span = slice(pred.first_index, pred.first_index + len(pred.psnr))
            numbers = np.asarray(batches.numbers[span], dtype=np.int64)
            keep = (numbers >= inp.start) & rule.scorable(batches, pred.first_index, len(numbers), predictor.in_frames)
            at = np.flatnonzero(keep)
            if at.size:
                maps = pred.error_maps()[at]
                seconds = np.asarray(batches.seconds[span])[at]
                scored, base, scene = tracker.steps(numbers[at], seconds, pred.psnr[at], background_db(maps))
                at, psnr, base, scene = at[scored], pred.psnr[at][scored], base[scored], scene[scored]
                parts.append((psnr, numbers[at], base, scene))
                if vmax is not None and at.size:
                    vmax.add(maps[scored])
                if rows is not None and at.size:
                    rows(detect_csv_rows(numbers[at], psnr, norm.stream(psnr, base), threshold))
            if stop is not None and stop.signum:
                break
    tracker.finish()
    empty: list[np.ndarray] = [np.zeros(0, dtype) for dtype in (np.float32, np.int64, np.float64, np.int64)]
    psnr, numbers, base, scene = [np.concatenate(column) for column in zip(*parts)] if parts else empty
    return Scored(
        psnr,
        numbers,
        len(batches.numbers),
        base,
        scene,
        stop.signum if stop is not None else 0,
        batches.report.summary() if batches.report is not None else None,
        rule.holes(batches),
        tracker.changes,
    )


@contextmanager
def _csv_rows(path: Path | None):
    """A function appending rows to scores.csv (header first) and flushing them; None without a path.

    Write errors (a full disk) name the file."""
    if path is None:
        yield None
        return
    try:
        with open(path, "w", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")

            def rows(items) -> None:
                try:
                    writer.writerows(items)
                    f.flush()  # a reader tailing the file sees each batch as soon as it is scored
                except OSError as exc:
                    raise OSError(exc.errno, exc.strerror, str(path)) from None

            rows([DETECT_CSV_HEADER])
            yield rows
    except OSError as exc:
        raise write_error(exc, exc.filename or path) from None


def heatmap_video_pass(job: FileJob, inp: Input, scored: Scored, scores: np.ndarray, vmax: float) -> None:
    """Pass 2 of --save_video: predict again batch by batch and append each scored frame to out/heatmap.mp4 (scores:
    the scored frames' (N,) scores; vmax: the error maps' colour scale). A file may be hours long, so nothing is kept
    from pass 1; eval.py's test videos are short, and it writes their videos from frames kept in memory."""
    by_number = dict(zip(scored.numbers.tolist(), range(len(scored.numbers))))
    batches = job.batches(inp)
    with HeatmapVideoWriter(
        job.out / "heatmap.mp4",
        inp.scored_fps(),
        vmax=vmax,
        size=(job.cfg.height, job.cfg.width),
        strip=ScoreStrip(
            len(scores), _score_range(job.norm, scores, job.threshold), job.threshold, int(scored.numbers[0])
        ),
    ) as writer:
        for pred in job.predictor.stream(batches):
            numbers = batches.numbers[pred.first_index : pred.first_index + len(pred.psnr)]
            rows = [i for i, n in enumerate(numbers) if n in by_number]
            if rows:
                writer.add_batch(
                    pred.target_images()[rows],
                    pred.error_maps()[rows],
                    scores[[by_number[numbers[i]] for i in rows]],
                )
            if numbers and numbers[-1] >= scored.numbers[-1]:
                break


def _score_range(norm: Normaliser, scores: np.ndarray, threshold: float) -> tuple[float, float]:
    """y-axis of the video's score curve: [0, 1] for min-max scores, else spanning scores and threshold."""
    if norm.mode == "whole":
        return 0.0, 1.0
    lo = min(0.0, float(scores.min()), threshold)
    top = max(float(scores.max()), threshold)
    return lo, top + 0.1 * (top - lo) + 1e-6  # headroom so the highest point is not on the border


def run_detect(job: FileJob, inp: Input, meta: dict) -> dict:
    """Score the input and write the report into job.out; returns the summary (n_frames, n_above, events, ...).

    The event rule's seconds become frames at the input's frame rate `inp.fps`. Stream mode survives SIGINT/SIGTERM:
    the frames scored so far are reported, marked interrupted (a signal while the report is written is noted too; a
    second one exits at once).
    """
    gap_text = DEFAULT_EVENT_GAP if job.event_gap is None else job.event_gap
    least_text = DEFAULT_MIN_EVENT if job.min_event is None else job.min_event
    gap = parse_duration(gap_text, "--event_gap", zero=True).frames(inp.fps)
    least = parse_duration(least_text, "--min_event", zero=True).frames(inp.fps)
    streamed = job.norm.mode == "stream"
    stopper = StopRequest()
    with stopper if streamed else nullcontext():
        started = time.monotonic()
        vmax = VmaxEstimator() if job.save_video else None
        csv_path = job.out / "scores.csv" if streamed else None
        scored = score_pass(job, job.batches(inp), inp, csv_path, vmax, stopper if streamed else None)
        check_scored(scored, inp, job.cfg.in_frames)
        return _report(job, inp, scored, vmax, meta, started, (gap, least))


def check_scored(scored: Scored, inp: Input, in_frames: int) -> None:
    """Nothing to report when a pass scored no frame: the signal that stopped it is re-raised, or FFPError says why
    (too few frames, breaks or a scene change everywhere, nothing from --start on)."""
    if len(scored.psnr):
        return
    if scored.interrupted:
        raise_for_signal(scored.interrupted)  # nothing scored yet: nothing to keep
    if scored.frames_read < in_frames + 1:
        raise FFPError(
            f"--video {inp.video.source.path}: {scored.frames_read} frame(s) read, fewer than the "
            f"{in_frames + 1}-frame window ({in_frames} past frames + the predicted one)"
        )
    if scored.holes or scored.scene_changes:
        why = holes_note(scored.holes, in_frames, "its frames") or scored.scene_changes[0].describe()
        raise FFPError(f"--video {inp.video.source.path}: no frame could be scored: {why}")
    raise FFPError(
        f"--video {inp.video.source.path}: no frame numbered {inp.start} or later among the "
        f"{scored.frames_read} read (--start {inp.start})"
    )


def _report(
    job: FileJob,
    inp: Input,
    scored: Scored,
    vmax: VmaxEstimator | None,
    meta: dict,
    started: float,
    events_rule: tuple[int, int],
) -> dict:
    """Scores, notes, events and the heatmap video of a finished pass; writes the report and returns the summary.
    meta: summary.json's description of the run; started: time.monotonic() when scoring began; events_rule: the
    largest gap and the least span of an event, in frames (detection.events.merge_events)."""
    norm, threshold, in_frames = job.norm, job.threshold, job.cfg.in_frames
    meta, (gap_frames, min_frames) = dict(meta), events_rule
    scores, short = norm.final(scored, inp.scored_fps(), in_frames)
    notes = [] if norm.mode == "stream" else [n for n in [flat_videos_note({inp.video.name: scored.psnr})] if n] + short
    notes += [n for n in [holes_note(scored.holes, in_frames, str(inp.video.source.path))] if n]
    notes += [change.describe() for change in scored.scene_changes]
    problems = (scored.report or {}).get("problems", [])
    video = None
    if vmax is not None and len(scored.psnr) and not scored.interrupted:
        video = "heatmap.mp4"
        heatmap_video_pass(job, inp, scored, scores, vmax.value())
    if "run" in meta:  # the report's header: how long scoring (and the heatmap video) took
        meta["run"] = {**meta["run"], "scoring time": duration_text(time.monotonic() - started)}
    meta.update(pass_meta(scored, norm, notes + problems))
    events = merge_events(scored.numbers, scores, threshold, inp.fps, gap_frames, min_frames)
    caveats = detect_caveats(norm.mode, scored.psnr, scores, threshold, norm.mean, norm.std)
    page = DetectPage(
        meta,
        csv_written=norm.mode == "stream",
        video=video,
        score_label=norm.label,
        events=events,
        fps=inp.fps,
        title=f"{inp.video.source.path.name} — {norm.mode} mode",
        event_gap_frames=gap_frames,
        min_event_frames=min_frames,
        caveats=caveats,
    )
    write_detect_report(job.out, ScoredFrames(scored.numbers, scored.psnr, scores, threshold), page)
    return {
        "n_frames": len(scored.psnr),
        "n_above": int((scores > threshold).sum()),
        "frames_read": scored.frames_read,
        "first": int(scored.numbers[0]) if len(scored.numbers) else None,
        "last": int(scored.numbers[-1]) if len(scored.numbers) else None,
        "interrupted": scored.interrupted,
        "notes": notes,
        "problems": problems,
        "events": events,
        "caveats": caveats,
        "event_gap_frames": gap_frames,
        "min_event_frames": min_frames,
        "fps": inp.fps,
    }


def pass_meta(scored: Scored, norm: Normaliser, notes: list[str]) -> dict:
    """summary.json's entries about the scoring pass: what was read and scored, how, and what went wrong."""
    return {
        "frames_read": scored.frames_read,
        "first_scored_frame": int(scored.numbers[0]) if len(scored.numbers) else None,
        "score": norm.describe(),
        "decoding": scored.report,
        "interrupted": bool(scored.interrupted),
        "notes": notes,
        "scene_changes": [change.as_dict() for change in scored.scene_changes],
    }
