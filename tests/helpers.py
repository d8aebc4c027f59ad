"""Small helpers shared by several test files."""
from __future__ import annotations

import signal
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path


@contextmanager
def own_signal_handlers():
    """train.main installs SIGINT/SIGTERM handlers (StopRequest); give pytest its own back afterwards."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


class _Links(HTMLParser):
    """Collects every src/href attribute of a page."""

    def __init__(self):
        super().__init__()
        self.links = []

    def handle_starttag(self, tag, attrs):
        self.links += [v for k, v in attrs if k in ("src", "href")]


def page_links(index: Path) -> list[str]:
    """Every src/href of an HTML file, in order."""
    parser = _Links()
    parser.feed(index.read_text(encoding="utf-8"))
    return parser.links
