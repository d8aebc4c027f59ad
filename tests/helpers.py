"""Small helpers shared by several test files."""
from __future__ import annotations

import signal
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path

import numpy as np


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


def leftovers(folder: Path) -> list[Path]:
    """Temp files a failed or finished atomic write could leave behind."""
    return [p for p in folder.rglob("*") if p.name.startswith(".") or ".tmp" in p.name]


def write_heatmap(path: Path, n: int = 7, size=(32, 48), labels=None) :
    """A small heatmap video of `n` random frames (scores 0..1), as the report tests link it."""
    from evaluation.video import HeatmapVideoWriter, choose_vmax
    rng = np.random.default_rng(0)
    errs = [rng.random(size) * 0.02 for _ in range(n)]
    with HeatmapVideoWriter(path, fps=10, vmax=choose_vmax(errs), size=size, curve_length=n) as writer:
        for i, err in enumerate(errs):
            frame = np.repeat(rng.random(size)[..., None], 3, axis=2)
            writer.add(frame, err, score=i / max(n - 1, 1), label=None if labels is None else labels[i])
    return writer


def count_frames(path: Path) -> tuple[int, int, int]:
    """(decoded frames, width, height) of a video file, read with OpenCV."""
    import cv2
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened()
    width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n, width, height
