"""Score any video with no labels: per-frame PSNR of the generator's prediction, an anomaly score, alarms, events.

    python detect.py --video clip.mp4 --trained_model weights/ped2_cpu.pth           # whole mode: the paper's score
    python detect.py --video clip.mp4 --trained_model weights/ped2_cpu.pth --mode stream --start 40s --save_video
    python detect.py --video frames/ --trained_model weights/ped2_cpu.pth --threshold 0.6 --min_event 1s
    python detect.py --video rtsp://camera/stream --trained_model weights/ped2_cpu.pth --on_event "python notify.py"
    python detect.py --video clip.mp4 --trained_model ped2.onnx      # ONNX Runtime, no torch (export.py --format onnx)

--video is a video file, a folder of frames, a stream URL (rtsp://, http://, udp://, ...) or a camera (0,
/dev/video0). --mode whole (files) scores 1 - min-max(PSNR) over the whole clip, threshold 0.5; --mode stream
(live sources) scores the z-score of -PSNR against the training data's PSNR statistics, threshold 3.0. Alarm
frames merge into events. Writes results/detect_<name>/: scores.csv, curve.png, alarms.txt, summary.json,
index.html (and heatmap.mp4 with --save_video); a live source runs until Ctrl-C, --duration or --max_frames.
Modes, events, live sources and frame rates: docs/detection.md.
"""

from __future__ import annotations

import argparse
import math
import re
import shlex
import shutil

from cli import ArgumentParser, answer_flags_first, run_cli
from config import (
    FLAG_GROUPS,
    RETRY_ATTEMPTS,
    add_config_flags,
    check_flag_values,
    describe_target,
    live_target,
    parse_until,
    statistics_default_text,
)
from errors import FFPError
from evaluation.events import (
    DEFAULT_EVENT_GAP,
    DEFAULT_MIN_EVENT,
    duration_value,
    events_line,
    events_rule,
    merge_events,  # light: numpy loads only when merge_events runs
    parse_duration,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--video",
        required=True,
        help="video file (mp4, avi, ...), folder of frames, stream URL (rtsp://, http://, udp://, tcp://, ...) "
        "or camera (0, /dev/video0)",
    )
    parser.add_argument(
        "--trained_model",
        required=True,
        help="checkpoint written by train.py or export.py (e.g. weights/ped2_cpu.pth), or an ONNX model (.onnx) "
        "written by export.py --format onnx: run by ONNX Runtime, without torch",
    )
    parser.add_argument(
        "--mode",
        choices=("whole", "stream"),
        default=None,
        help="whole: 1 - minmax(PSNR) over the file; stream: z-score of -PSNR from training stats "
        "(default: whole for files and folders, stream for live sources)",
    )
    parser.add_argument(
        "--threshold", type=float, default=None, help="alarm when score > threshold (default 0.5 whole, 3.0 stream)"
    )
    parser.add_argument(
        "--event_gap",
        default=DEFAULT_EVENT_GAP,
        help="alarm frames separated by at most this gap, in frames ('5') or seconds ('0.5s'), "
        f"form one event (default {DEFAULT_EVENT_GAP})",
    )
    parser.add_argument(
        "--min_event",
        default=DEFAULT_MIN_EVENT,
        help="events spanning fewer frames ('3') or seconds ('0.3s') than this are dropped "
        f"(default {DEFAULT_MIN_EVENT})",
    )
    parser.add_argument("--psnr_mean", type=float, default=None, help="stream mode: training PSNR mean (dB)")
    parser.add_argument("--psnr_std", type=float, default=None, help="stream mode: training PSNR std (dB)")
    parser.add_argument("--start", default=None, help="score frames from here on: frames ('600') or seconds ('60s')")
    parser.add_argument(
        "--save_video",
        action="store_true",
        help="also write heatmap.mp4 (files: reads the input twice; live sources: written on the fly)",
    )
    parser.add_argument(
        "--fps",
        type=float,
        default=None,
        help="frame rate of the input in frames/s, for a source that does not state it (frame folders: default 10; "
        "live sources: otherwise measured from the first seconds)",
    )
    parser.add_argument(
        "--duration",
        default=None,
        help="live sources: stop after this long ('90s', '30m', '8h'; default: until stopped)",
    )
    parser.add_argument(
        "--on_event",
        default=None,
        help="live sources: run this command per event (split like a shell line, run without a shell) with the "
        "event's JSON on stdin; its failures are logged and never stop detection",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=RETRY_ATTEMPTS,
        help=f"live sources: reconnection attempts in a row before giving up (default {RETRY_ATTEMPTS}; "
        "waits 0.5 s, doubling up to 10 s)",
    )
    parser.add_argument("--out_dir", default="results", help="parent folder of the result folder (default: results)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing result folder")
    parser.add_argument(
        "--max_frames",
        type=int,
        default=None,
        help="read only the frames numbered below N (the first N of an undamaged constant-rate file; live: stop "
        "after the source delivered N frames)",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    add_config_flags(
        parser,
        ("data", "machine"),
        only=("data_root", *FLAG_GROUPS["machine"]),
        defaults=statistics_default_text,
        aliases={"eval_batch_size": ("--batch_size",)},
    )
    args = parser.parse_args(argv)
    if args.max_frames is not None and args.max_frames <= 0:
        raise FFPError(f"--max_frames must be a positive integer, got {args.max_frames}")
    if args.threshold is not None and not math.isfinite(args.threshold):
        raise FFPError(f"--threshold must be a finite number, got {args.threshold}")
    for flag in ("--event_gap", "--min_event"):
        duration_value(getattr(args, flag[2:]), flag)  # syntax only; seconds become frames at the input's fps
    if args.start is not None:
        parse_until(args.start, "--start")  # same grammar as --train_until; FFPError names the value
    if (args.psnr_mean is None) != (args.psnr_std is None):
        raise FFPError("--psnr_mean and --psnr_std must be given together")
    check_live_flags(args)
    if args.psnr_mean is not None and args.mode != "stream":
        raise FFPError(
            "--psnr_mean/--psnr_std set stream mode's training statistics; add --mode stream "
            "(whole mode normalises over the clip itself)"
        )
    check_flag_values(args, spellings={"eval_batch_size": "--batch_size/--eval_batch_size"})
    return args


def parse_seconds(text: str, flag: str) -> float:
    """'90', '90s', '30m', '8h' -> seconds (> 0); FFPError naming the flag otherwise."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*(s|m|min|h)?\s*", str(text))
    if not match or float(match.group(1)) <= 0:
        raise FFPError(f"{flag} must be a positive duration ('90s', '30m', '8h'), got {text!r}")
    return float(match.group(1)) * {"s": 1, None: 1, "m": 60, "min": 60, "h": 3600}[match.group(2)]


def on_event_argv(text: str) -> tuple[str, ...]:
    """--on_event split like a shell line (no shell runs it); FFPError when empty or its program is not found."""
    try:
        argv = tuple(shlex.split(text))
    except ValueError as exc:
        raise FFPError(f"--on_event {text!r}: {exc}") from None
    if not argv:
        raise FFPError("--on_event is empty (expected a command, e.g. --on_event 'python notify.py')")
    if shutil.which(argv[0]) is None:
        raise FFPError(f"--on_event: program {argv[0]!r} not found (not on PATH, or not an executable file)")
    return argv


def check_live_flags(args: argparse.Namespace) -> None:
    """Settle --mode and check the flags that only make sense for one kind of source (FFPError naming them)."""
    live = live_target(args.video) is not None
    if args.mode is None:
        args.mode = "stream" if live else "whole"
    if args.fps is not None and not (math.isfinite(args.fps) and args.fps > 0):
        raise FFPError(f"--fps must be a positive number of frames per second, got {args.fps}")
    if args.retries < 0:
        raise FFPError(f"--retries must be 0 or more, got {args.retries}")
    if live and args.mode == "whole":
        raise FFPError(
            f"--video {describe_target(args.video)} is a live source, which has no end to normalise "
            "over: use --mode stream (the default for live sources)"
        )
    if live and args.start is not None:
        raise FFPError("--start cuts a file or folder; a live source starts now (leave --start out)")
    if not live:
        for flag in ("duration", "on_event"):
            if getattr(args, flag) is not None:
                raise FFPError(f"--{flag} is for live sources (stream URLs, cameras); --video {args.video} is not one")
    if args.duration is not None:
        parse_seconds(args.duration, "--duration")
    if args.on_event is not None:
        on_event_argv(args.on_event)


if __name__ == "__main__":
    answer_flags_first(parse_args)  # --help and flag errors answer before torch is imported (seconds)

# The heavy imports, after the flags are known to be good (style checkers: E402 is intended here).
import csv
import sys
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cli import StopRequest, raise_for_signal
from config import FOLDER_FPS, STATS_WINDOWS, Config
from dataset import FrameFolder, Video, VideoFile, frame_number, open_source
from dataset.live import LIVE_SAME_RATE, LiveReader, RetryPolicy
from dataset.resample import Continuity, at_model_rate, continuity, holes_note, needs_resampling, rate_note, video_fps
from evaluation.detect_report import DETECT_CSV_HEADER, detect_caveats, detect_csv_rows, write_detect_report
from evaluation.pages import LiveResult, StagedResult, file_stems
from evaluation.runtime import ModelInfo, Predictor, warm_up
from evaluation.scenes import REFERENCE_S, SceneSettings, SceneTracker, background_db, scene_scores
from evaluation.scores import flat_videos_note
from evaluation.video import HeatmapVideoWriter, VmaxEstimator
from evaluation.watch import LiveFiles, WatchResult, WatchSettings, watch
from model_file import environment, load_model
from utils import duration_text

# ----------------------------------------------------------------------------- input


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


# ----------------------------------------------------------------------------- scoring


@dataclass
class Normaliser:
    """PSNR (dB) -> anomaly score. mode 'stream': (mean - psnr) / std; 'whole': 1 - minmax over the file."""

    mode: str
    mean: float | None = None
    std: float | None = None
    origin: str = ""

    def stream(self, psnr: np.ndarray, base: np.ndarray | None = None) -> np.ndarray:
        """Scores of a batch as soon as it is predicted (stream mode only; float64): (base − PSNR) / std, with each
        frame's baseline `base` ((N,) dB, evaluation.scenes.SceneTracker) or the training mean."""
        return ((self.mean if base is None else base) - np.asarray(psnr, dtype=np.float64)) / self.std

    def final(self, scored: Scored, fps: float, in_frames: int) -> tuple[np.ndarray, list[str]]:
        """Scores of the whole file (N,) float64 at `fps` scored frames/s: stream mode's, or 1 − min-max(PSNR) within
        each scene (evaluation.scenes.scene_scores); and a note per scene too short to normalise."""
        if self.mode == "stream":
            return self.stream(scored.psnr, scored.base), []
        scores, short = scene_scores(scored.psnr, scored.scene, SceneSettings(fps, in_frames).frames(REFERENCE_S))
        notes = [
            f"scene {k} (frames {scored.numbers[scored.scene == k][0]}-{scored.numbers[scored.scene == k][-1]}) is "
            f"shorter than {REFERENCE_S:g} s: too short to normalise over itself, scored 0"
            for k in short
        ]
        return scores, notes

    def tracker(self, fps: float, in_frames: int, threshold: float) -> SceneTracker:
        """A SceneTracker for one stream at `fps` frames/s: stream mode's baseline starts at the training mean and
        follows drifts on frames at most `threshold` std below it; whole mode has none."""
        if self.mode != "stream":
            return SceneTracker(SceneSettings(fps, in_frames))
        return SceneTracker(SceneSettings(fps, in_frames), self.mean, threshold * self.std)

    @property
    def label(self) -> str:
        """Short name of the score, for plot legends."""
        return "z-score of -PSNR (training stats)" if self.mode == "stream" else "1 - minmax(PSNR)"

    def describe(self) -> str:
        """How the score was computed, for the report."""
        if self.mode == "stream":
            return (
                f"(baseline - PSNR) / std, the baseline starting at the training PSNR mean {self.mean:.4f} dB, std "
                f"{self.std:.4f} dB ({self.origin}), following slow drifts and re-settled after scene changes"
            )
        return "1 - minmax(PSNR) within each scene of the input (the paper's per-video normalisation)"


def stream_stats(info: ModelInfo, args: argparse.Namespace) -> tuple[float, float, str]:
    """(mean, std, where from) of the training PSNR: flags, the model file, or (a PyTorch checkpoint) computed now
    from its training data (with this command's config `info.cfg`)."""
    if args.psnr_mean is not None:
        return args.psnr_mean, args.psnr_std, "--psnr_mean/--psnr_std"
    stats = info.psnr_stats
    if isinstance(stats, dict) and "mean" in stats and "std" in stats:
        return float(stats["mean"]), float(stats["std"]), f"stored in {info.path.name}"
    if info.state is None:
        raise FFPError(
            f"--mode stream needs the training PSNR statistics: ONNX model {info.path} has none (metadata "
            "ffp.psnr_stats); pass --psnr_mean and --psnr_std, or use --mode whole"
        )
    from evaluation.predict import psnr_stats_from_training_data
    from utils import resolve_device

    ckpt, device = info.path, resolve_device(info.cfg.device)
    try:
        stats = psnr_stats_from_training_data(
            info.state, info.cfg, args.data_root, device, f"checkpoint {ckpt}", STATS_WINDOWS
        )
    except FFPError as exc:
        raise FFPError(
            f"--mode stream needs the training PSNR statistics ('psnr_stats'): {exc}, pass "
            f"--psnr_mean and --psnr_std, or use --mode whole"
        ) from None
    print(
        f"training PSNR statistics computed from {stats['n']} windows of {stats['computed_from']} (checkpoint {ckpt} "
        f"has none; not stored): mean {stats['mean']:.3f} dB, std {stats['std']:.3f} dB",
        flush=True,
    )
    return stats["mean"], stats["std"], f"computed now from {stats['n']} training windows of {stats['computed_from']}"


def normaliser(mode: str, info: ModelInfo, args: argparse.Namespace) -> Normaliser:
    """The score normalisation of --mode. Whole mode keeps the model's stored training PSNR statistics, when it
    has them, only to say when the clip is far from the training footage (they do not enter its scores)."""
    if mode == "whole":
        stats = info.psnr_stats
        if isinstance(stats, dict) and "mean" in stats and "std" in stats:
            return Normaliser("whole", float(stats["mean"]), float(stats["std"]), f"stored in {info.path.name}")
        return Normaliser("whole")
    mean, std, origin = stream_stats(info, args)
    if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
        raise FFPError(
            f"stream mode needs a finite PSNR mean and a positive std, got mean {mean}, std {std} "
            "(--psnr_mean/--psnr_std or the checkpoint's psnr_stats)"
        )
    return Normaliser("stream", float(mean), float(std), origin)


@dataclass
class Scored:
    """What one scoring pass produced: PSNR and frame numbers of the scored frames, and how the pass ended."""

    psnr: np.ndarray
    numbers: np.ndarray
    frames_read: int
    base: np.ndarray  # stream mode's PSNR baseline of each scored frame (dB; NaN in whole mode)
    scene: np.ndarray  # the scene of each scored frame (0, 1, … counting scene changes)
    interrupted: int = 0  # the signal that stopped it, 0 if it ran to the end
    report: dict | None = None  # decode report of a video file (gaps, early end)
    holes: list = field(default_factory=list)  # breaks in the stream (Continuity.holes): the frames after unscored
    scene_changes: list = field(default_factory=list)  # evaluation.scenes.SceneChange: their frames unscored


def score_pass(
    predictor: Predictor,
    batches,
    inp: Input,
    norm: Normaliser,
    threshold: float,
    csv_path: Path | None,
    vmax: VmaxEstimator | None = None,
    stop: StopRequest | None = None,
) -> Scored:
    """One pass over a batch stream of `inp` (`inp.batches`): PSNR of every scored frame: number >= inp.start, its
    window spans no break (`Input.continuity`) and it is not part of a scene change (`evaluation.scenes`).

    csv_path (stream mode): scores.csv rows are appended and flushed batch by batch. vmax: offered every batch's
    error maps (for the heatmap scale). stop: checked after every batch; a signal ends the pass early with
    what was scored. Memory: one batch of frames plus 40 bytes per frame (PSNR, number, baseline, scene, and the
    stream's frame number and time), whatever the length.
    """
    parts: list[tuple[np.ndarray, ...]] = []
    rule = inp.continuity()
    tracker = norm.tracker(inp.scored_fps(), predictor.in_frames, threshold)
    with _csv_rows(csv_path) as rows:
        for pred in predictor.stream(batches):
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
    empty = [np.zeros(0, dtype) for dtype in (np.float32, np.int64, np.float64, np.int64)]
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
        raise FFPError(f"cannot write {exc.filename or path}: {exc.strerror or exc}") from None


def write_heatmap_video(
    path: Path,
    predictor: Predictor,
    inp: Input,
    cfg: Config,
    batch_size: int,
    scored: Scored,
    scores: np.ndarray,
    vmax: float,
    threshold: float,
    score_range: tuple[float, float],
) -> None:
    """Pass 2 of --save_video: predict again batch by batch and append each scored frame to the mp4."""
    by_number = dict(zip(scored.numbers.tolist(), range(len(scored.numbers))))
    batches = inp.batches(predictor, cfg, batch_size)
    with HeatmapVideoWriter(
        path,
        inp.scored_fps(),
        vmax=vmax,
        size=(cfg.height, cfg.width),
        curve_length=len(scores),
        score_range=score_range,
        threshold=threshold,
        first_frame=int(scored.numbers[0]),
    ) as writer:
        for pred in predictor.stream(batches):
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


def run_detect(
    predictor: Predictor,
    inp: Input,
    cfg: Config,
    batch_size: int,
    norm: Normaliser,
    threshold: float,
    save_video: bool,
    out: Path,
    meta: dict,
    event_gap: str | None = None,
    min_event: str | None = None,
) -> dict:
    """Score the input and write the report into `out`; returns the summary (n_frames, n_above, events, ...).

    event_gap, min_event: --event_gap / --min_event as given (frames '5' or seconds '0.5s'; None: the defaults
    of evaluation.events), converted to frames with the input's frame rate `inp.fps`.
    Stream mode survives SIGINT/SIGTERM: the frames scored so far are reported, marked interrupted (a signal
    while the report is written is noted too; a second one exits at once).
    """
    gap = parse_duration(DEFAULT_EVENT_GAP if event_gap is None else event_gap, "--event_gap", inp.fps)
    min_frames = parse_duration(DEFAULT_MIN_EVENT if min_event is None else min_event, "--min_event", inp.fps)
    streamed = norm.mode == "stream"
    stopper = StopRequest()
    with stopper if streamed else nullcontext():
        return _score_and_report(
            predictor,
            inp,
            cfg,
            batch_size,
            norm,
            threshold,
            save_video,
            out,
            meta,
            stopper if streamed else None,
            gap,
            min_frames,
        )


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


def _score_and_report(
    predictor: Predictor,
    inp: Input,
    cfg: Config,
    batch_size: int,
    norm: Normaliser,
    threshold: float,
    save_video: bool,
    out: Path,
    meta: dict,
    stopper: StopRequest | None,
    gap_frames: int = 0,
    min_frames: int = 1,
) -> dict:
    """run_detect's work; `stopper` (stream mode) turns the first SIGINT/SIGTERM into a clean early end.
    gap_frames, min_frames: how alarm frames merge into events (evaluation.events.merge_events)."""
    started = time.monotonic()
    streamed = norm.mode == "stream"
    vmax = VmaxEstimator() if save_video else None
    scored = score_pass(
        predictor,
        inp.batches(predictor, cfg, batch_size),
        inp,
        norm,
        threshold,
        out / "scores.csv" if streamed else None,
        vmax,
        stopper,
    )
    check_scored(scored, inp, cfg.in_frames)
    scores, short = norm.final(scored, inp.scored_fps(), cfg.in_frames)
    notes = [] if streamed else [n for n in [flat_videos_note({inp.video.name: scored.psnr})] if n] + short
    notes += [n for n in [holes_note(scored.holes, cfg.in_frames, str(inp.video.source.path))] if n]
    notes += [change.describe() for change in scored.scene_changes]
    problems = (scored.report or {}).get("problems", [])
    video = None
    if save_video and len(scored.psnr) and not scored.interrupted:
        video = "heatmap.mp4"
        write_heatmap_video(
            out / video,
            predictor,
            inp,
            cfg,
            batch_size,
            scored,
            scores,
            vmax.value(),
            threshold,
            _score_range(norm, scores, threshold),
        )
    if "run" in meta:  # the report's header: how long scoring (and the heatmap video) took
        meta = {**meta, "run": {**meta["run"], "scoring time": duration_text(time.monotonic() - started)}}
    meta = {
        **meta,
        "frames_read": scored.frames_read,
        "first_scored_frame": int(scored.numbers[0]) if len(scored.numbers) else None,
        "score": norm.describe(),
        "decoding": scored.report,
        "interrupted": bool(scored.interrupted),
        "notes": notes + problems,
        "scene_changes": [change.as_dict() for change in scored.scene_changes],
    }
    events = merge_events(scored.numbers, scores, threshold, inp.fps, gap_frames, min_frames)
    caveats = detect_caveats(norm.mode, scored.psnr, scores, threshold, norm.mean, norm.std)
    write_detect_report(
        out,
        scored.numbers,
        scored.psnr,
        scores,
        threshold,
        meta,
        csv_written=streamed,
        video=video,
        score_label=norm.label,
        events=events,
        fps=inp.fps,
        title=f"{inp.video.source.path.name} — {norm.mode} mode",
        event_gap_frames=gap_frames,
        min_event_frames=min_frames,
        caveats=caveats,
    )
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


# ----------------------------------------------------------------------------- live sources


# A live source is scored one frame at a time unless --batch_size says otherwise: on the 2-core CPU batch 1 kept up
# with the same cameras as the eval batch (16) at a fraction of the latency (95th percentile 141 ms against 1.3 s
# alone at 25 fps; beside a busy process 0.6 s against 3.8 s; bench/live_speed.py, docs/performance.md).
LIVE_BATCH_SIZE = 1


def live_settings(args: argparse.Namespace, fps: float, threshold: float, cfg: Config) -> WatchSettings:
    """The live loop's settings from the flags; `fps`: the timeline's rate (the model's, else --fps or 10)."""
    return WatchSettings(
        threshold=threshold,
        gap_frames=parse_duration(args.event_gap, "--event_gap", fps),
        min_frames=parse_duration(args.min_event, "--min_event", fps),
        fps=fps,
        batch_size=LIVE_BATCH_SIZE if args.eval_batch_size is None else cfg.eval_batch_size,
        in_frames=cfg.in_frames,
        save_video=args.save_video,
        on_event=on_event_argv(args.on_event) if args.on_event else None,
        duration_s=parse_seconds(args.duration, "--duration") if args.duration else None,
    )


def live_meta(reader: LiveReader, result: WatchResult, settings: WatchSettings, fps_origin: str, files) -> dict:
    """summary.json's 'live' entry: what the source delivered, what was scored or skipped, and how it ended."""
    stats = reader.stats
    return {
        "source": describe_target(reader.target),
        "ended_by": result.ended_by,
        "model_fps": settings.fps,
        "model_fps_from": fps_origin,
        "source_fps_measured": stats.source_fps(),
        "frames_delivered": stats.delivered,
        "frames_on_model_timeline": stats.kept,
        "frames_scored": len(result.numbers),
        "frames_skipped_scoring_behind": reader.dropped,
        "connections": stats.connects,
        "outages_s": [[round(a - stats.first_arrival, 3), round(b - stats.first_arrival, 3)] for a, b in stats.outages],
        "latency_arrival_to_row": result.latency_summary(),
        "events_file": "events.jsonl",
        "heatmap_scale_vmax": files.vmax,
    }


def watch_source(args, predictor: Predictor, info: ModelInfo, norm: Normaliser, threshold: float) -> int:
    """Watch a live --video until it ends, is lost, --duration/--max_frames pass or a signal comes; write the report."""
    target = live_target(args.video)
    assert target is not None
    name = describe_target(target)
    cfg, resample_to, fps_origin = info.cfg, info.fps, info.fps_origin  # fps None: unknown, nothing resampled
    fps = resample_to or args.fps or FOLDER_FPS  # the timeline's rate (events, seconds)
    if resample_to is None:
        fps_origin = f"{fps_origin}: frames are not resampled"
        print(f"note: {fps_origin}; events are counted at {fps:g} fps (--fps)", flush=True)
    settings = live_settings(args, fps, threshold, cfg)
    warm_up(predictor, (cfg.height, cfg.width))
    log = lambda line: print(line, flush=True)  # noqa: E731  (the reader and --on_event threads log through it)
    retry = RetryPolicy(attempts=args.retries)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name.split("://")[-1]).strip("_")[:60] or "live"
    with LiveResult(args.out_dir, f"detect_{stem}", args.overwrite) as folder:
        print(f"watching {name} (stream mode, model rate {fps:g} fps: {fps_origin}); results in {folder.path}")
        with (
            StopRequest() as stopper,
            LiveReader(
                target, cfg.height, cfg.width, resample_to, retry, log, args.max_frames, source_fps=args.fps
            ) as reader,
            LiveFiles(folder.dir, settings, (cfg.height, cfg.width), (min(0.0, threshold - 3), threshold + 6)) as files,
        ):
            result = watch(predictor, reader, norm, settings, files, lambda: stopper.signum, log)
        if not len(result.numbers):
            if result.signal:
                raise_for_signal(result.signal)
            raise reader.error or FFPError(
                f"--video {name}: {reader.stats.delivered} frame(s) arrived, too few for one "
                f"{cfg.in_frames + 1}-frame window"
            )
        folder.keep = True
        source_fps = reader.stats.source_fps() or fps
        note = rate_note(source_fps, resample_to, name, LIVE_SAME_RATE)
        meta = {
            "run": {
                "input": name,
                "checkpoint": info.described,
                "mode": "stream (live)",
                **environment(predictor),
            },
            "video": name,
            "checkpoint": str(info.path),
            "step": info.step,
            "mode": "stream",
            "frame_size": [cfg.height, cfg.width],
            "psnr_stats": {"mean": norm.mean, "std": norm.std},
            "score": norm.describe(),
            "interrupted": bool(result.signal),
            "notes": ([note] if note else []) + [change.describe() for change in result.scene_changes],
            "scene_changes": [change.as_dict() for change in result.scene_changes],
            "live": live_meta(reader, result, settings, fps_origin, files),
        }
        scale = source_fps / fps  # the report counts in source frame numbers
        numbers, scores = np.asarray(result.numbers), np.asarray(result.scores)
        write_detect_report(
            folder.dir,
            numbers,
            np.asarray(result.psnr),
            scores,
            threshold,
            meta,
            csv_written=True,
            video=files.video_name,
            score_label=norm.label,
            events=result.events,
            fps=source_fps,
            title=f"{name} — live, stream mode",
            event_gap_frames=round(settings.gap_frames * scale),
            min_event_frames=round(settings.min_frames * scale),
            caveats=detect_caveats("stream", np.asarray(result.psnr), scores, threshold, norm.mean, norm.std),
        )
    alarms = events_line(len(result.events), int((scores > threshold).sum()), threshold, len(numbers))
    print(
        f"watched {name}: {len(numbers)} frames scored ({reader.stats.delivered} delivered, {reader.dropped} skipped "
        f"while scoring was behind), {alarms}; ended by {result.ended_by}; results in {folder.path}",
        flush=True,
    )
    if result.signal:
        return 128 + result.signal
    if reader.error is not None:
        print(f"error: {reader.error}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    predictor, info = load_model(args)
    cfg = info.cfg
    threshold = info.default_threshold[args.mode] if args.threshold is None else args.threshold
    if live_target(args.video) is not None:
        return watch_source(args, predictor, info, normaliser("stream", info, args), threshold)
    inp = open_input(Path(args.video), args)
    inp.model_fps = info.fps
    note = rate_note(inp.fps, inp.model_fps, str(inp.video.source.path))
    if note:
        print(f"note: {note}", flush=True)
    norm = normaliser(args.mode, info, args)
    if args.mode == "whole" and not 0 <= threshold < 1:
        print(
            f"note: --threshold {threshold:g} is outside whole mode's scores (0..1): every frame alarms or none does",
            flush=True,
        )
    path = inp.video.source.path
    stem = path.stem if path.is_file() else path.name
    name = f"detect_{file_stems([stem])[stem]}"
    run = {
        "input": str(path),
        "checkpoint": info.described,
        "mode": args.mode,
        **environment(predictor),
    }
    meta = {
        "run": run,
        "video": str(path),
        "checkpoint": str(info.path),
        "step": info.step,
        "mode": args.mode,
        "start": inp.start,
        "max_frames": args.max_frames,
        "frame_size": [cfg.height, cfg.width],
        "psnr_stats": {"mean": norm.mean, "std": norm.std} if norm.mode == "stream" else None,
    }
    with StagedResult(args.out_dir, name, args.overwrite) as stage:
        summary = run_detect(
            predictor,
            inp,
            cfg,
            cfg.eval_batch_size,
            norm,
            threshold,
            args.save_video,
            stage.dir,
            meta,
            args.event_gap,
            args.min_event,
        )
    for problem in summary["problems"]:
        print(f"warning: {path}: {problem}")
    for note in summary["notes"] + summary["caveats"]:
        print(f"note: {note}")
    if summary["n_frames"]:
        events = summary["events"]
        print(
            f"scored {summary['n_frames']} frames (frame numbers {summary['first']}..{summary['last']}, of "
            f"{summary['frames_read']} read): "
            f"{events_line(len(events), summary['n_above'], threshold, summary['n_frames'])}; "
            f"{events_rule(summary['event_gap_frames'], summary['min_event_frames'], summary['fps'])} "
            f"[mode={args.mode}: {norm.describe()}]; results in {stage.path}"
        )
        shown = [
            f"{e.first_frame}-{e.last_frame} ({e.start_s:.2f}-{e.end_s:.2f} s, peak {e.peak_score:.3g} at "
            f"{e.peak_frame})"
            for e in events[:8]
        ]
        if shown:
            print("events: " + ", ".join(shown) + (f", … ({len(events) - 8} more)" if len(events) > 8 else ""))
    if summary["interrupted"]:
        print(
            f"interrupted by signal {summary['interrupted']}: kept the {summary['n_frames']} frames scored so far "
            f"({stage.path}, summary marked interrupted)",
            file=sys.stderr,
        )
        return 128 + summary["interrupted"]
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
