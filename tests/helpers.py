"""Small helpers shared by several test files."""
from __future__ import annotations

import signal
from contextlib import contextmanager


@contextmanager
def own_signal_handlers():
    """train.main installs SIGINT/SIGTERM handlers (StopRequest); give pytest its own back afterwards."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
