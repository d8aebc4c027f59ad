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


# ----------------------------------------------------------------------------- headless Chromium

# Appended to a page before </body>: waits until every <video> has its metadata (or an error) and every <img>
# has loaded (or failed), then writes what the browser saw as JSON into <pre id="ffp-probe">, which
# `chromium --dump-dom` prints. A video that the browser cannot decode reports error code 4
# (MEDIA_ERR_SRC_NOT_SUPPORTED) and no duration.
PROBE_SCRIPT = """<pre id="ffp-probe"></pre>
<script>
(function () {
  const videos = Array.from(document.querySelectorAll('video'));
  const images = Array.from(document.querySelectorAll('img'));
  let pending = videos.length + images.length;
  function report() {
    document.getElementById('ffp-probe').textContent = JSON.stringify({
      videos: videos.map(v => ({src: v.getAttribute('src'), duration: isFinite(v.duration) ? v.duration : null,
                                width: v.videoWidth, height: v.videoHeight,
                                error: v.error ? v.error.code : null})),
      images: images.map(i => ({src: i.getAttribute('src'), width: i.naturalWidth}))});
  }
  function settled() { if (--pending === 0) report(); }
  videos.forEach(v => {
    if (v.error || v.readyState >= 1) { settled(); return; }
    v.addEventListener('loadedmetadata', settled, {once: true});
    v.addEventListener('error', settled, {once: true});
  });
  images.forEach(i => {
    if (i.complete) { settled(); return; }
    i.addEventListener('load', settled, {once: true});
    i.addEventListener('error', settled, {once: true});
  });
  if (pending === 0) report();
})();
</script>
"""


CHROMIUM = "/usr/bin/chromium"   # Debian's package, which .ci/run installs


def chromium_path() -> str:
    """Headless Chromium's executable; pytest.skip without it, but pytest.fail when $CI is set (CI must run it)."""
    import os
    import shutil

    import pytest
    found = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if found is None:
        reason = f"chromium is not installed ({CHROMIUM} missing, none on PATH); browser checks not run"
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(f"{reason}, and CI={os.environ['CI']} requires them (.ci/run installs chromium)")
        pytest.skip(reason)
    return found


def chromium_args(tmp_path: Path, *extra: str) -> list[str]:
    """A headless Chromium command line that uses a fresh profile under tmp_path and stays off the network."""
    return [chromium_path(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--autoplay-policy=no-user-gesture-required", f"--user-data-dir={tmp_path / 'profile'}", *extra]


def with_probe(page: Path, name: str = "probe.html") -> Path:
    """A copy of `page` in the same folder (so relative links still resolve) with PROBE_SCRIPT before </body>."""
    html = page.read_text(encoding="utf-8")
    at = html.rfind("</body>")
    probe = page.with_name(name)
    probe.write_text(html[:at] + PROBE_SCRIPT + html[at:] if at >= 0 else html + PROBE_SCRIPT, encoding="utf-8")
    return probe


def chromium_probe(page: Path, tmp_path: Path) -> dict:
    """What headless Chromium sees of `page`'s media, from PROBE_SCRIPT (which `page` must contain).

    Returns {'videos': [{src, duration (s, None when unknown), width, height (px), error (code or None)}],
             'images': [{src, width (naturalWidth px, 0 when broken)}]}.
    Skips (fails under CI) without chromium; AssertionError when the page never reported.
    """
    import html
    import json
    import re
    import subprocess
    done = subprocess.run(chromium_args(tmp_path, "--virtual-time-budget=10000", "--dump-dom",
                                        page.resolve().as_uri()), capture_output=True, text=True, timeout=90)
    found = re.search(r'<pre id="ffp-probe">(.*?)</pre>', done.stdout, re.S)
    assert found and found.group(1).strip(), (f"the probe in {page} did not report (exit {done.returncode}); "
                                              f"stderr tail: {done.stderr[-2000:]}")
    return json.loads(html.unescape(found.group(1)))
