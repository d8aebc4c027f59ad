"""The live loop's speed: detect.py watching an MJPEG stream of real Ped2 frames served on 127.0.0.1.

    python bench/live_speed.py [--rates 10,15,25] [--batch_sizes 1,16] [--seconds 60] [--threads 0,1]
    python bench/live_speed.py --rates 10 --batch_sizes 16 --seconds 1200          # RSS over 20 minutes
    python bench/live_speed.py --beside_busy ...                                    # beside a busy process

Per case (source rate × --batch_size × --threads), a fresh detect.py process watches the stream with the
--preset cpu model (weights/ped2_cpu.pth: 256×384, widths 16-32-64-128) for --seconds and reports:
  scored_per_s      frames scored per second of streaming (the model's rate is 10 fps: at most ~10 when it keeps up)
  skipped           frames on the model's timeline skipped because scoring was behind (0 = it keeps up)
  latency p50/p95   frame arrival -> its scores.csv row written and flushed (ms), from summary.json
  rss               the detect.py process's resident memory: after 60 s, at the end, peak (MB), sampled each second
                    (the JSON also keeps one sample a minute)
The stream is Ped2 training video 01 (10 fps footage) at the source rate (frames repeated), cycled. With
--beside_busy a pure-Python busy loop runs for the whole case (one core taken). Nothing is asserted;
results/bench_live_speed.json. The MJPEG server is the tests' (tests/live_server.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from live_server import MjpegServer  # noqa: E402

PED2 = ROOT.parent / "shared" / "data" / "ped2" / "training" / "frames" / "01"


def stream_jpegs(rate: float) -> list[bytes]:
    """Ped2 training video 01 as a `rate` fps camera sends it (10 fps footage: frames repeated)."""
    files = sorted(PED2.glob("*.jpg"))
    if not files:
        raise SystemExit(f"real Ped2 frames not found in {PED2}")
    n = int(len(files) * rate / 10.0)
    return [cv2.imencode(".jpg", cv2.imread(str(files[int(k * 10.0 / rate)])))[1].tobytes() for k in range(n)]


class RssSampler(threading.Thread):
    """VmRSS of a process (MB), once a second, with the time since start."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.samples, self.done = pid, [], threading.Event()
        self.start_time = time.monotonic()

    def run(self) -> None:
        while not self.done.wait(1.0):
            try:
                text = Path(f"/proc/{self.pid}/status").read_text()
            except OSError:
                return
            rss = next((line.split()[1] for line in text.splitlines() if line.startswith("VmRSS")), None)
            if rss is None:  # the process is exiting (a zombie has no memory left to report)
                return
            kb = int(rss)
            self.samples.append((time.monotonic() - self.start_time, kb / 1024))


def run_case(rate: float, batch: int, threads: int, seconds: float, checkpoint: str, policy: str | None) -> dict:
    jpegs = stream_jpegs(rate)
    n = int(rate * seconds)
    out = tempfile.mkdtemp(prefix="ffp-live-bench-")
    env = dict(os.environ)
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    with MjpegServer(jpegs, fps=rate, sessions=[(0, n)], max_seconds=seconds + 60) as server:
        argv = [sys.executable, str(ROOT / "detect.py"), "--video", server.url, "--trained_model", checkpoint]
        argv += ["--out_dir", out, "--max_frames", str(n), "--batch_size", str(batch), "--threads", str(threads)]
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        sampler = RssSampler(proc.pid)
        sampler.start()
        output, _ = proc.communicate(timeout=seconds + 600)
        sampler.done.set()
    if proc.returncode != 0:
        raise SystemExit(f"detect.py failed ({proc.returncode}):\n{output[-3000:]}")
    (summary_path,) = Path(out).glob("*/summary.json")
    live = json.loads(summary_path.read_text())["live"]
    rss = [mb for _, mb in sampler.samples]
    after_60 = next((mb for t, mb in sampler.samples if t >= 60), rss[-1] if rss else None)
    return {
        "rate": rate,
        "batch_size": batch,
        "threads": threads,
        "omp_wait_policy": policy or "default",
        "seconds": seconds,
        "scored": live["frames_scored"],
        "timeline": live["frames_on_model_timeline"],
        "scored_per_s": live["frames_scored"] / seconds,
        "skipped": live["frames_skipped_scoring_behind"],
        "latency_p50_ms": live["latency_arrival_to_row"].get("median_ms"),
        "latency_p95_ms": live["latency_arrival_to_row"].get("p95_ms"),
        "rss_60s_mb": after_60,
        "rss_end_mb": rss[-1] if rss else None,
        "rss_peak_mb": max(rss) if rss else None,
        "rss_per_minute_mb": [round(mb, 1) for t, mb in sampler.samples if int(t) % 60 == 0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="10,15,25", help="source frame rates (fps), comma-separated")
    parser.add_argument("--batch_sizes", default="1,16", help="detect.py --batch_size values, comma-separated")
    parser.add_argument("--threads", default="0", help="detect.py --threads values (0: its default), comma-separated")
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds of stream per case")
    parser.add_argument("--omp_wait_policy", default=None, help="OMP_WAIT_POLICY for detect.py (default: unset)")
    parser.add_argument("--beside_busy", action="store_true", help="run a busy-loop process beside each case")
    parser.add_argument("--checkpoint", default=str(ROOT / "weights" / "ped2_cpu.pth"))
    parser.add_argument(
        "--model_fps",
        type=float,
        default=None,
        help="score with a copy of the checkpoint that says it was trained at this rate (e.g. 30 with a 30 fps "
        "source: nothing is resampled away, so the loop's own capacity shows)",
    )
    args = parser.parse_args()
    if args.model_fps:
        import torch

        state = torch.load(args.checkpoint, weights_only=True)
        state["fps"] = args.model_fps
        args.checkpoint = str(Path(tempfile.mkdtemp(prefix="ffp-live-bench-")) / f"at_{args.model_fps:g}fps.pth")
        torch.save(state, args.checkpoint)
    rows = []
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.beside_busy else None
    try:
        for rate in [float(r) for r in args.rates.split(",")]:
            for batch in [int(b) for b in args.batch_sizes.split(",")]:
                for threads in [int(t) for t in args.threads.split(",")]:
                    row = run_case(rate, batch, threads, args.seconds, args.checkpoint, args.omp_wait_policy)
                    row["beside_busy"] = args.beside_busy
                    row["model_fps"] = args.model_fps or 10.0
                    rows.append(row)
                    shown = (
                        f"{k}: {v:.1f}" if isinstance(v, float) else f"{k}: {v}"
                        for k, v in row.items()
                        if k != "rss_per_minute_mb"
                    )
                    print(", ".join(shown), flush=True)
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    out = ROOT / "results" / "bench_live_speed.json"
    out.parent.mkdir(exist_ok=True)
    previous = json.loads(out.read_text())["rows"] if out.is_file() else []
    out.write_text(json.dumps({"rows": previous + rows}, indent=1))


if __name__ == "__main__":
    main()
