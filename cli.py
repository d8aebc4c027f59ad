"""What the command-line scripts share: one-line user errors and the --debug switch."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from utils import FFPError


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


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad flag value is an FFPError (one 'error: …' line from run_cli) instead of usage + exit 2."""

    def error(self, message: str):
        raise FFPError(f"{message} (see {self.prog} --help)")


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run `main`; a user error becomes 'error: <one line>' on stderr and exit status 1 (traceback with --debug).

    User errors: FFPError (also re-raised from a DataLoader worker) and OSError naming a file (a folder that
    cannot be written, a full disk). Ctrl-C outside training's own handler prints 'error: interrupted', exit 130.
    """
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        return main(args)
    except FFPError as exc:
        if debug:
            raise
        print(f"error: {user_message(exc)}", file=sys.stderr)
        return 1
    except RuntimeError as exc:  # DataLoader re-raises worker errors as the original type when it can
        if "FFPError" not in str(exc) or debug:
            raise
        print(f"error: {user_message(exc)}", file=sys.stderr)
        return 1
    except OSError as exc:
        if debug or (exc.filename is None and exc.strerror is None):
            raise
        print(f"error: {os_error_message(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if debug:
            raise
        print("error: interrupted", file=sys.stderr)
        return 130
