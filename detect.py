"""Score any video with no labels: per-frame PSNR of the generator's prediction, an anomaly score, alarms, events.

    python detect.py --video clip.mp4 --trained_model weights/ped2_cpu.pth           # whole mode: the paper's score
    python detect.py --video clip.mp4 --trained_model weights/ped2_cpu.pth --mode stream --start 40s --save_video
    python detect.py --video frames/ --trained_model weights/ped2_cpu.pth --threshold 0.6 --min_event 1s
    python detect.py --video rtsp://camera/stream --trained_model weights/ped2_cpu.pth --on_event "python notify.py"
    python detect.py --video clip.mp4 --trained_model ped2.onnx      # ONNX Runtime, no torch (export.py --format onnx)

--video is a video file, a folder of frames, a stream URL (rtsp://, http://, udp://, ...) or a camera (0,
/dev/video0). --mode whole (files) scores 1 - min-max(PSNR) within each scene of the clip, threshold 0.5; --mode
stream (live sources) scores the z-score of -PSNR against a baseline from the training data's PSNR statistics,
threshold 3.0. Alarm frames merge into events. Writes results/detect_<name>/: scores.csv, curve.png, alarms.txt,
summary.json, index.html (and heatmap.mp4 with --save_video); a live source runs until Ctrl-C, --duration or
--max_frames.
Modes, events, live sources and frame rates: docs/detection.md.
"""

from __future__ import annotations

import argparse
import math

from cli import ArgumentParser, answer_flags_first, run_cli
from config import FLAG_GROUPS, parse_until
from config_flags import add_config_flags, check_flag_values, statistics_default_text
from detection.events import (
    DEFAULT_EVENT_GAP,
    DEFAULT_MIN_EVENT,
    events_line,
    events_rule,
)
from detection.options import check_live_flags
from durations import parse_duration
from errors import FFPError
from live_targets import RETRY_ATTEMPTS, live_target


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """detect.py's flags, parsed and checked (FFPError naming the flag): input, scoring, live and machine flags."""
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_input_flags(parser)
    add_scoring_flags(parser)
    add_live_flags(parser)
    add_config_flags(
        parser,
        ("data", "machine"),
        only=("data_root", *FLAG_GROUPS["machine"]),
        defaults=statistics_default_text,
        aliases={"eval_batch_size": ("--batch_size",)},
    )
    args = parser.parse_args(argv)
    check_values(args)
    return args


def add_input_flags(parser: argparse.ArgumentParser) -> None:
    """What to score, with which model, and where the results go."""
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
    parser.add_argument("--start", default=None, help="score frames from here on: frames ('600') or seconds ('60s')")
    parser.add_argument(
        "--fps",
        type=float,
        default=None,
        help="frame rate of the input in frames/s, for a source that does not state it (frame folders: default 10; "
        "live sources: otherwise measured from the first seconds)",
    )
    parser.add_argument(
        "--max_frames",
        type=int,
        default=None,
        help="read only the frames numbered below N (the first N of an undamaged constant-rate file; live: stop "
        "after the source delivered N frames)",
    )
    parser.add_argument("--out_dir", default="results", help="parent folder of the result folder (default: results)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing result folder")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")


def add_scoring_flags(parser: argparse.ArgumentParser) -> None:
    """How frames become scores, alarms and events."""
    parser.add_argument(
        "--mode",
        choices=("whole", "stream"),
        default=None,
        help="whole: 1 - minmax(PSNR) within each scene of the file; stream: z-score of -PSNR against a baseline "
        "starting at the training stats (default: whole for files and folders, stream for live sources)",
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
    parser.add_argument(
        "--save_video",
        action="store_true",
        help="also write heatmap.mp4 (files: reads the input twice; live sources: written on the fly)",
    )


def add_live_flags(parser: argparse.ArgumentParser) -> None:
    """Flags for live sources (stream URLs and cameras)."""
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


def check_values(args: argparse.Namespace) -> None:
    """The checks argparse cannot do: ranges, duration grammars, flags that go together, flags for one kind of
    source (`check_live_flags`) and the machine settings (FFPError naming the flag)."""
    if args.max_frames is not None and args.max_frames <= 0:
        raise FFPError(f"--max_frames must be a positive integer, got {args.max_frames}")
    if args.threshold is not None and not math.isfinite(args.threshold):
        raise FFPError(f"--threshold must be a finite number, got {args.threshold}")
    for flag in ("--event_gap", "--min_event"):
        parse_duration(getattr(args, flag[2:]), flag, zero=True)  # seconds become frames at the input's rate
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


if __name__ == "__main__":
    answer_flags_first(parse_args)  # --help and flag errors answer before torch is imported (seconds)

# The heavy imports, after the flags are known to be good (style checkers: E402 is intended here).
import sys
from pathlib import Path

from dataset.resample import rate_note
from detection.file import FileJob, open_input, run_detect
from detection.live import watch_source
from detection.normalise import normaliser
from evaluation.pages import StagedResult, file_stems
from model_file import environment, load_model


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    predictor, info = load_model(args)
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
    meta = file_meta(args, inp, info, predictor, norm)
    with StagedResult(args.out_dir, f"detect_{file_stems([stem])[stem]}", args.overwrite) as stage:
        job = FileJob(
            predictor, info.cfg, norm, threshold, stage.dir, args.save_video, None, args.event_gap, args.min_event
        )
        summary = run_detect(job, inp, meta)
    return print_summary(summary, args.mode, norm.describe(), threshold, stage.path, path)


def file_meta(args: argparse.Namespace, inp, info, predictor, norm) -> dict:
    """summary.json's description of a file's run: what was scored, with which model, how."""
    path, cfg = inp.video.source.path, info.cfg
    return {
        "run": {"input": str(path), "checkpoint": info.described, "mode": args.mode, **environment(predictor)},
        "video": str(path),
        "checkpoint": str(info.path),
        "step": info.step,
        "mode": args.mode,
        "start": inp.start,
        "max_frames": args.max_frames,
        "frame_size": [cfg.height, cfg.width],
        "psnr_stats": {"mean": norm.mean, "std": norm.std} if norm.mode == "stream" else None,
    }


def print_summary(summary: dict, mode: str, score: str, threshold: float, where: Path, path: Path) -> int:
    """The closing lines of the run on file or folder `path` (problems, notes, the count, the events; `score` says how
    --mode scores) and the exit status: 0, or 128 + the signal that interrupted it."""
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
            f"[mode={mode}: {score}]; results in {where}"
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
            f"({where}, summary marked interrupted)",
            file=sys.stderr,
        )
        return 128 + summary["interrupted"]
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
