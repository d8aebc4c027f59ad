"""What the command-line scripts share: one-line user errors and the --debug switch."""
from __future__ import annotations

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


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run `main`; an FFPError becomes 'error: <one line>' on stderr and exit status 1 (traceback with --debug)."""
    args = sys.argv[1:] if argv is None else argv
    try:
        return main(args)
    except FFPError as exc:
        if "--debug" in args:
            raise
        print(f"error: {user_message(exc)}", file=sys.stderr)
        return 1
    except RuntimeError as exc:  # DataLoader re-raises worker errors as the original type when it can
        if "FFPError" not in str(exc) or "--debug" in args:
            raise
        print(f"error: {user_message(exc)}", file=sys.stderr)
        return 1
