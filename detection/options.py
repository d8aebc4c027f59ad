"""detect.py's flag values that need parsing or go with one kind of source: durations, the --on_event command,
--mode's default (torch-free: checked before torch loads)."""

from __future__ import annotations

import argparse
import math
import shlex
import shutil

from durations import parse_duration
from errors import FFPError
from live_targets import describe_target, live_target


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
    problem = _live_only_problem(args) if live else _file_only_problem(args)
    if problem:
        raise FFPError(problem)
    if args.duration is not None:
        parse_duration(args.duration, "--duration", bare="s")
    if args.on_event is not None:
        on_event_argv(args.on_event)


def _live_only_problem(args: argparse.Namespace) -> str | None:
    """What a live --video cannot be given: whole mode, --start."""
    if args.mode == "whole":
        return (
            f"--video {describe_target(args.video)} is a live source, which has no end to normalise "
            "over: use --mode stream (the default for live sources)"
        )
    if args.start is not None:
        return "--start cuts a file or folder; a live source starts now (leave --start out)"
    return None


def _file_only_problem(args: argparse.Namespace) -> str | None:
    """What a file or folder --video cannot be given: the live flags."""
    for flag in ("duration", "on_event"):
        if getattr(args, flag) is not None:
            return f"--{flag} is for live sources (stream URLs, cameras); --video {args.video} is not one"
    return None
