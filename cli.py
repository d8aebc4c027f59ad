"""What the command-line scripts share: one-line user errors, the --debug switch, flags answered before torch loads.

Light on purpose (no torch, numpy or project packages): `answer_flags_first` runs before the heavy imports."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable

from errors import FFPError


def user_message(exc: BaseException) -> str:
    """The one line to show for an FFPError, also when it was re-raised from a DataLoader worker.

    Worker errors arrive as 'Caught FFPError in DataLoader worker process 0. Original Traceback …';
    the user-facing text is the last line of that traceback.
    """
    text = str(exc).strip()
    if "Original Traceback" in text:
        text = text.splitlines()[-1]
        text = text.split("FFPError: ", 1)[-1]
    return " ".join(text.split())


def os_error_message(exc: OSError) -> str:
    """'<path>: <reason>' for an OSError from the user's environment (unwritable folder, disk full, …)."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    where = [str(f) for f in (exc.filename, exc.filename2) if f is not None]
    return " ".join(f"{' -> '.join(where)}: {reason}".split()) if where else " ".join(reason.split())


def answer_flags_first(parse_args: Callable[[list[str]], object]) -> None:
    """Parse the command line with a script's `parse_args` before the script imports torch (seconds on a busy
    machine): --help prints and exits 0, a bad flag prints one 'error: …' line and exits 1, and a good command
    line returns so that the script loads the rest and runs. `parse_args` must need only light modules
    (argparse, config, cli)."""
    try:
        parse_args(sys.argv[1:])
    except FFPError as exc:
        if "--debug" in sys.argv[1:]:
            raise
        print(f"error: {user_message(exc)}", file=sys.stderr)
        raise SystemExit(1) from None


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad flag value is an FFPError (one 'error: …' line from run_cli) instead of usage + exit 2."""

    def error(self, message: str):
        raise FFPError(f"{message} (see {self.prog} --help)")


class Terminated(BaseException):
    """SIGTERM turned into an exception (like KeyboardInterrupt for SIGINT), so that `with` blocks clean up:
    a staged result folder is removed instead of being left behind by the default instant death."""


def _raise_terminated(signum, frame):
    raise Terminated()


def raise_for_signal(signum: int) -> None:
    """Leave at once the way the signal asks: KeyboardInterrupt for SIGINT (exit 130), Terminated for SIGTERM
    (exit 143); both let `with` blocks clean up on the way out (run_cli prints the one line)."""
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


class StopRequest:
    """`with StopRequest() as stop:` the first SIGINT/SIGTERM sets `stop.signum` instead of killing, so the work
    inside stops at its next check and keeps what it has (training saves, detect.py reports); a second one leaves
    at once (`raise_for_signal`). The previous handlers come back when the block ends. Main thread only."""

    def __init__(self) -> None:
        self.signum = 0  # the signal that asked to stop, 0 while none has

    def __enter__(self) -> StopRequest:
        self._saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s in self._saved:
            signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for s, handler in self._saved.items():
            signal.signal(s, handler)

    def _handle(self, signum: int, frame: object) -> None:
        if self.signum:
            raise_for_signal(signum)
        self.signum = signum  # the work says so itself: printing inside a handler can hit a half-done print


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run `main`; a user error becomes 'error: <one line>' on stderr and exit status 1 (traceback with --debug).

    User errors: FFPError (also re-raised from a DataLoader worker) and OSError naming a file (a folder that
    cannot be written, a full disk). Ctrl-C outside a command's own handler prints 'error: interrupted', exit 130;
    SIGTERM likewise 'error: terminated', exit 143, after the same clean-up (training and detect.py's stream
    mode install their own handlers, which stop and keep their work).
    """
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if in_main_thread else None
    if previous is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return _run(main, args, debug)
    finally:
        if previous is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, previous)


def _run(main: Callable[[list[str] | None], int], args: list[str], debug: bool) -> int:
    """run_cli's body: `main` with user errors and interrupts turned into one line and an exit status."""
    try:
        return main(args)
    except (FFPError, RuntimeError, OSError, KeyboardInterrupt, Terminated) as exc:
        answer = None if debug else _answer(exc)
        if answer is None:
            raise
        print(f"error: {answer[0]}", file=sys.stderr)
        return answer[1]


def _answer(exc: BaseException) -> tuple[str, int] | None:
    """(the one line, the exit status) for a user error or an interrupt; None for anything else, whose traceback
    is worth seeing. DataLoader re-raises a worker's FFPError as a RuntimeError naming it; an OSError is the user's
    when it names a file or a reason (a folder that cannot be written, a full disk)."""
    if isinstance(exc, FFPError):
        return user_message(exc), 1
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", 130
    if isinstance(exc, Terminated):
        return "terminated (SIGTERM)", 143
    if isinstance(exc, OSError):
        return None if exc.filename is None and exc.strerror is None else (os_error_message(exc), 1)
    if isinstance(exc, RuntimeError) and "FFPError" in str(exc):
        return user_message(exc), 1
    return None
