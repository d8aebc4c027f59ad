"""Watching a live source (a stream URL or a camera) with detect.py's flags: the loop is detection.watch; this sets
it up, and writes the report when the source ends, is lost, or a signal comes."""

from __future__ import annotations

import argparse
import re
import sys

import numpy as np

from cli import StopRequest, raise_for_signal
from config import FOLDER_FPS, Config
from dataset.live import LIVE_SAME_RATE, LiveReader, ReaderSettings, RetryPolicy
from dataset.resample import rate_note
from detection.events import events_line
from detection.report import DetectPage, ScoredFrames, detect_caveats, write_detect_report
from detection.watch import LiveFiles, WatchResult, WatchSettings, watch
from durations import parse_duration
from errors import FFPError
from evaluation.pages import LiveResult
from inference.runtime import ModelInfo, Predictor, warm_up
from live_targets import describe_target, live_target
from model_file import environment

from .normalise import Normaliser
from .options import on_event_argv

# A live source is scored one frame at a time unless --batch_size says otherwise: on the 2-core CPU batch 1 kept up
# with the same cameras as the eval batch (16) at a fraction of the latency (95th percentile 141 ms against 1.3 s
# alone at 25 fps; beside a busy process 0.6 s against 3.8 s; bench/live_speed.py, docs/performance.md).
LIVE_BATCH_SIZE = 1


def live_settings(args: argparse.Namespace, fps: float, threshold: float, cfg: Config) -> WatchSettings:
    """The live loop's settings from the flags; `fps`: the timeline's rate (the model's, else --fps or 10)."""
    return WatchSettings(
        threshold=threshold,
        gap_frames=parse_duration(args.event_gap, "--event_gap", zero=True).frames(fps),
        min_frames=parse_duration(args.min_event, "--min_event", zero=True).frames(fps),
        fps=fps,
        batch_size=LIVE_BATCH_SIZE if args.eval_batch_size is None else cfg.eval_batch_size,
        in_frames=cfg.in_frames,
        save_video=args.save_video,
        on_event=on_event_argv(args.on_event) if args.on_event else None,
        duration_s=parse_duration(args.duration, "--duration", bare="s").value if args.duration else None,
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
                target,
                ReaderSettings(cfg.height, cfg.width, resample_to, args.max_frames, source_fps=args.fps),
                retry,
                log,
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
        notes = [note] if note else []
        meta = report_meta(name, info, predictor, norm, result, notes)
        meta["live"] = live_meta(reader, result, settings, fps_origin, files)
        scale = source_fps / fps  # the report counts in source frame numbers
        numbers, scores = np.asarray(result.numbers), np.asarray(result.scores)
        page = DetectPage(
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
        write_detect_report(folder.dir, ScoredFrames(numbers, np.asarray(result.psnr), scores, threshold), page)
    return closing_lines(name, result, reader, scores, threshold, folder.path)


def report_meta(name: str, info: ModelInfo, predictor: Predictor, norm: Normaliser, result: WatchResult, notes) -> dict:
    """summary.json's description of a live run (its 'live' entry comes from `live_meta`); notes: the rate note."""
    return {
        "run": {"input": name, "checkpoint": info.described, "mode": "stream (live)", **environment(predictor)},
        "video": name,
        "checkpoint": str(info.path),
        "step": info.step,
        "mode": "stream",
        "frame_size": [info.cfg.height, info.cfg.width],
        "psnr_stats": {"mean": norm.mean, "std": norm.std},
        "score": norm.describe(),
        "interrupted": bool(result.signal),
        "notes": list(notes) + [change.describe() for change in result.scene_changes],
        "scene_changes": [change.as_dict() for change in result.scene_changes],
    }


def closing_lines(name: str, result: WatchResult, reader: LiveReader, scores, threshold: float, where) -> int:
    """The line that ends a live run, and its exit status: 128 + the signal that stopped it, 1 when the source was
    lost (its error on stderr), else 0. scores: the (N,) scores of the scored frames."""
    alarms = events_line(len(result.events), int((scores > threshold).sum()), threshold, len(scores))
    print(
        f"watched {name}: {len(scores)} frames scored ({reader.stats.delivered} delivered, {reader.dropped} skipped "
        f"while scoring was behind), {alarms}; ended by {result.ended_by}; results in {where}",
        flush=True,
    )
    if result.signal:
        return 128 + result.signal
    if reader.error is not None:
        print(f"error: {reader.error}", file=sys.stderr)
        return 1
    return 0
