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


def train_cli(argv: list[str]) -> int:
    """train.py's main through run_cli in this process (one-line errors, exit status), signal handlers restored."""
    import train as train_script
    from cli import run_cli
    with own_signal_handlers():
        return run_cli(train_script.main, argv)


def eval_cli(ckpt: Path, root: Path, out: Path, *extra: str) -> int:
    """eval.py on `ckpt` and data `root`, results under `out`, CPU, no DataLoader workers; the exit status."""
    import eval as eval_script
    from cli import run_cli
    return run_cli(eval_script.main, ["--trained_model", str(ckpt), "--data_root", str(root), "--out_dir", str(out),
                                      "--device", "cpu", "--num_workers", "0", *extra])
