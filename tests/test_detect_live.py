"""detect.py on live sources served from the test itself on 127.0.0.1: an HTTP MJPEG stream of real Ped2 frames
(an inserted abnormal stretch, a dropped connection, a 25 fps source), a server that never answers, a closed
port, SIGINT; the live loop's parts (events as they end, resampling, the rolling video curve)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import ROOT, SHARED_DATA, ped2_stream, read_scores, run_detect, scored_frames, the_one_event
from live_server import MjpegServer, SilentServer, push_mpegts

import detect
from dataset.live import FrameClock, ReaderStats
from dataset.resample import Resampler
from detection import on_event
from detection.events import Event, EventTracker, merge_events
from errors import FFPError
from evaluation.video import HeatmapVideoWriter, ScoreStrip
from live_targets import live_target

SHIPPED = ROOT / "weights" / "ped2_cpu.pth"
PED2_TRAIN = SHARED_DATA / "ped2" / "training" / "frames" / "01"  # the frames of helpers.ped2_stream
ABNORMAL = range(70, 90)  # frames of the stream that carry an inserted object (a white box crossing fast)
RUN_TIMEOUT_S = 180  # every detect.py run below streams at most 30 s of frames

needs_ped2 = pytest.mark.skipif(not PED2_TRAIN.is_dir(), reason=f"real Ped2 frames not found at {PED2_TRAIN}")


def detect_live(url: str, out: Path, *extra: str, wait: bool = True):
    """detect.py on `url` in a subprocess (one torch thread: the reader thread gets the other core)."""
    argv = [sys.executable, "detect.py", "--video", url, "--trained_model", str(SHIPPED), "--out_dir", str(out)]
    argv += ["--device", "cpu", "--threads", "1", *extra]
    if not wait:
        return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


def result_folder(out: Path) -> Path:
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    return folder


# ----------------------------------------------------------------------------------------------- the live runs
@pytest.mark.slow
@needs_ped2
def test_stream_with_an_event_and_a_reconnect(tmp_path):
    """120 frames at 10 fps over two connections (the first drops after frame 59): one event around the inserted
    object, written to events.jsonl with its snapshot, handed to --on_event; numbering continues after the
    reconnect; the video and the report are complete."""
    hook = tmp_path / "hook.py"
    hook.write_text("import sys, pathlib\npathlib.Path(sys.argv[1]).write_text(sys.stdin.read())\n")
    handed = tmp_path / "handed.json"
    jpegs = ped2_stream(120, abnormal=ABNORMAL)
    with MjpegServer(jpegs, fps=10, sessions=[(0, 60), (60, 120)]) as server:
        done = detect_live(
            server.url, tmp_path / "out", "--max_frames", "120", "--save_video", "--event_gap", "2s",
            "--on_event", f"{sys.executable} {hook} {handed}",
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "reconnected" in done.stdout
    folder = result_folder(tmp_path / "out")
    frames = scored_frames(folder)
    assert frames == sorted(set(frames)) and frames[-1] >= 110  # numbering continues across the reconnect
    assert any(f >= 64 for f in frames) and not any(60 <= f < 64 for f in frames)  # a new window history
    event = the_one_event(folder, ABNORMAL)
    assert event["last_frame"] < ABNORMAL.stop + 5
    assert event["first_frame"] <= event["peak_frame"] <= event["last_frame"] and event["peak_score"] > 3
    assert event["start"] < event["end"] and event["duration_s"] > 0
    assert cv2.imread(str(folder / event["snapshot"])) is not None
    assert json.loads(handed.read_text()) == event
    assert handed.read_text().endswith("}\n")  # one line: appended to a log, events stay apart
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["live"]["connections"] == 2 and summary["live"]["frames_delivered"] == 120
    assert abs(summary["live"]["source_fps_measured"] - 10) < 1.5  # the outage is not counted as time
    assert "[ WARN" not in done.stderr + done.stdout  # FFmpeg's timeouts are said in the reader's own words
    assert summary["n_events"] == 1 and not summary["interrupted"]
    capture = cv2.VideoCapture(str(folder / "heatmap.mp4"))
    assert capture.isOpened() and capture.read()[0]
    capture.release()
    assert (folder / "index.html").is_file() and (folder / "curve.png").is_file()


@pytest.mark.slow
@needs_ped2
def test_a_faster_camera_is_resampled_to_the_models_rate(tmp_path):
    """A 25 fps camera (the footage at 25 fps) scored by a 10 fps model: once its rate is measured (after the first
    second and 17 frames: ~42 frames kept whole) about 2 in 5 frames are kept, said once."""
    with MjpegServer(ped2_stream(150, fps=25), fps=25) as server:
        done = detect_live(server.url, tmp_path / "out", "--max_frames", "150")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("resampled to 10 fps") == 1, done.stdout
    live = json.loads((result_folder(tmp_path / "out") / "summary.json").read_text())["live"]
    assert 75 <= live["frames_on_model_timeline"] <= 95, live  # ~42 + 2/5 of the remaining ~108
    assert 20 < live["source_fps_measured"] < 30


@pytest.mark.slow
@needs_ped2
def test_sigint_during_a_live_run_completes_every_file(tmp_path):
    with MjpegServer(ped2_stream(300), fps=10) as server:
        proc = detect_live(server.url, tmp_path / "out", wait=False)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            csvs = list((tmp_path / "out").glob("*/scores.csv"))
            if csvs and len(csvs[0].read_text().splitlines()) > 10:
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    folder = result_folder(tmp_path / "out")
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["interrupted"] and summary["live"]["ended_by"] == "signal 2"
    assert len(scored_frames(folder)) == summary["n_frames"] >= 10
    assert (folder / "index.html").is_file() and (folder / "events.jsonl").is_file()


@pytest.mark.slow
@needs_ped2
def test_a_second_protocol_mpegts_over_tcp(tmp_path):
    """MPEG-TS over TCP (pushed by PyAV's FFmpeg): the stream's own timestamps time the frames, so the burst that
    arrives while FFmpeg probes the stream keeps its 10 fps spacing and every frame is on the model's timeline.

    12 s of stream: FFmpeg's probe holds back up to ~5 s of it, which then arrives in the connection's first second
    (not measured, RATE_SETTLE_S); the rate needs RATE_MIN_FRAMES after that (60 frames once left it unmeasured)."""
    files = [str(f) for f in sorted(PED2_TRAIN.glob("*.jpg"))[:120]]
    pusher, url = push_mpegts(files, 10.0)
    try:
        done = detect_live(url, tmp_path / "out", "--max_frames", "120", "--retries", "6")
    finally:
        pusher.kill()
        pusher.wait()
    assert done.returncode == 0, done.stderr
    live = json.loads((result_folder(tmp_path / "out") / "summary.json").read_text())["live"]
    assert live["frames_delivered"] == 120 and live["frames_on_model_timeline"] == 120, live
    assert 9.0 < live["source_fps_measured"] < 11.5  # within LIVE_SAME_RATE of 10: at the model's rate


@pytest.mark.slow
@needs_ped2
def test_a_source_lost_for_good_keeps_the_report_and_exits_1(tmp_path):
    with MjpegServer(ped2_stream(40), fps=10, sessions=[(0, 40)]) as server:  # then 404 for every reconnection
        done = detect_live(server.url, tmp_path / "out", "--retries", "2")
    assert done.returncode == 1
    assert "retry in 0.5 s" in done.stdout and "retry in 1 s" in done.stdout
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: --video {server.url} was lost and did not come back after 2 retries (")
    folder = result_folder(tmp_path / "out")
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["live"]["ended_by"] == "source lost" and summary["live"]["frames_delivered"] == 40
    assert summary["n_frames"] == len(scored_frames(folder)) > 0  # how many were scored depends on the CPU's speed


@pytest.mark.slow
@needs_ped2
def test_duration_ends_a_live_run_cleanly(tmp_path):
    with MjpegServer(ped2_stream(200), fps=10) as server:
        done = detect_live(server.url, tmp_path / "out", "--duration", "4s")
    assert done.returncode == 0, done.stderr
    summary = json.loads((result_folder(tmp_path / "out") / "summary.json").read_text())
    assert summary["live"]["ended_by"] == "duration" and 10 <= summary["n_frames"] <= 45


@needs_ped2
def test_a_source_that_never_answers_ends_with_one_line(tmp_path):
    with SilentServer() as server:
        done = detect_live(server.url, tmp_path / "out", "--retries", "0")
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: --video {server.url} could not be opened after 0 retries")
    assert not list((tmp_path / "out").iterdir())  # nothing scored: no result folder


@needs_ped2
def test_a_closed_port_is_retried_with_backoff(tmp_path):
    with SilentServer() as server:
        url = server.url  # closed on leaving: the port refuses connections
    done = detect_live(url, tmp_path / "out", "--retries", "2")
    assert done.returncode == 1
    assert "retry in 0.5 s" in done.stdout and "retry in 1 s" in done.stdout
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: --video {url} could not be opened after 2 retries")


@pytest.mark.slow
@needs_ped2
def test_a_faster_video_file_is_resampled_by_its_timestamps(tmp_path, capsys):
    """A 25 fps file of 10 fps footage, scored by a 10 fps model: 2 in 5 frames kept by their timestamps (frame
    numbers stay the file's own), said once, and the footage scores as normal."""
    clip = tmp_path / "fast.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (360, 240))
    for jpeg in ped2_stream(100, fps=25):
        writer.write(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR))
    writer.release()
    folder = run_detect(clip, SHIPPED, tmp_path / "out", "--mode", "stream", "--threads", "1")
    assert capsys.readouterr().out.count("resampled to 10 fps") == 1
    frames = [int(row["frame"]) for row in read_scores(folder)]
    assert 34 <= len(frames) <= 37 and set(np.diff(frames)) <= {2, 3}
    scores = [float(row["score"]) for row in read_scores(folder)]
    assert np.median(scores) < 3.0  # at its own rate the footage is normal; unresampled it would not be


# ----------------------------------------------------------------------------------------------- flags
@pytest.mark.parametrize(
    "extra, message",
    [
        (["--mode", "whole"], "is a live source, which has no end to normalise over: use --mode stream"),
        (["--start", "10"], "--start cuts a file or folder"),
        (["--duration", "soon"], "--duration must be a positive duration"),
        (["--on_event", "no-such-program-ffp --x"], "--on_event: program 'no-such-program-ffp' not found"),
        (["--retries", "-1"], "--retries must be 0 or more"),
        (["--fps", "0"], "--fps must be a positive number"),
    ],
)
def test_live_flags_are_checked_before_anything_runs(extra, message):
    with pytest.raises(FFPError, match=re.escape(message)):
        detect.parse_args(["--video", "rtsp://127.0.0.1:9/x", "--trained_model", "m.pth", *extra])


def test_live_flags_on_a_file_and_unknown_schemes(tmp_path):
    clip = tmp_path / "clip.avi"
    clip.write_bytes(b"x")
    for argv, message in [
        (["--video", str(clip), "--duration", "5s"], "--duration is for live sources"),
        (["--video", "ftp://127.0.0.1/x.mp4"], "'ftp://' is not a streaming source"),
    ]:
        with pytest.raises(FFPError, match=re.escape(message)):
            detect.parse_args([*argv, "--trained_model", "m.pth"])


def test_live_targets():
    assert live_target("rtsp://cam.local/stream") == "rtsp://cam.local/stream"
    assert live_target("HTTP://127.0.0.1:8099/stream.mjpg") == "HTTP://127.0.0.1:8099/stream.mjpg"
    assert live_target("0") == 0 and live_target("/dev/video2") == "/dev/video2"
    assert live_target("clip.mp4") is None and live_target(str(ROOT)) is None


# ----------------------------------------------------------------------------------------------- the parts
def reference_events(frames, scores, threshold, fps, gap, least):
    """Events found on the whole sequence at once, independently of EventTracker: runs of alarm frames split where
    consecutive alarm frame numbers are more than gap + 1 apart, runs spanning fewer than `least` frames dropped."""
    alarm = np.flatnonzero(scores > threshold)
    if not len(alarm):
        return []
    events = []
    for rows in np.split(alarm, np.flatnonzero(np.diff(frames[alarm]) - 1 > gap) + 1):
        first, last = int(frames[rows[0]]), int(frames[rows[-1]])
        if last - first + 1 >= least:
            peak = rows[int(np.argmax(scores[rows]))]
            events.append(
                Event(first, last, int(frames[peak]), float(scores[peak]), len(rows), first / fps, (last + 1) / fps)
            )
    return events


def test_event_tracker_gives_merge_events_answers_as_events_end():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 150))
        frames = np.cumsum(rng.integers(1, 4, n))
        scores = rng.random(n) * (rng.random(n) < 0.6)
        gap, least = int(rng.integers(0, 6)), int(rng.integers(0, 6))
        tracker, online = EventTracker(0.5, 10.0, gap, least), []
        for f, s in zip(frames, scores):
            ended = tracker.add(int(f), float(s))
            if ended is not None:
                assert f - ended.last_frame - 1 > gap  # said no later than the frame that proves it ended
                online.append(ended)
        online += [e for e in [tracker.finish()] if e is not None]
        assert online == reference_events(frames, scores, 0.5, 10.0, gap, least)
        assert merge_events(frames, scores, 0.5, 10.0, gap, least) == online


@pytest.mark.parametrize(
    "source_fps, jitter, kept", [(25.0, 0.0, (98, 101)), (30.0, 0.0, (99, 101)), (10.0, 0.02, (100, 100))]
)
def test_resampler_keeps_the_frames_nearest_the_models_ticks(source_fps, jitter, kept):
    """10 s of a steady source at 10 fps: about 100 frames kept, never two periods without one; a source at the
    model's own rate keeps every frame despite arrival jitter; a slower one keeps all of its frames."""
    rng = np.random.default_rng(1)
    n = int(10 * source_fps)
    times = np.maximum.accumulate(np.arange(n) / source_fps + rng.uniform(-jitter, jitter, n))
    resampler = Resampler(10.0)
    chosen = [t for t in times if resampler.keep(float(t))]
    assert kept[0] <= len(chosen) <= kept[1]
    assert np.diff(chosen).max() < 0.2
    slow = Resampler(10.0)
    assert all(slow.keep(k / 5.0) for k in range(50))


def test_the_measured_rate_leaves_outages_out():
    """A 10 fps source that was away for 30 s between two connections still measures 10 fps (summary.json's
    source_fps_measured), whatever the outage's length."""
    stats = ReaderStats()
    for k in range(40):
        stats.measure(k / 10)
    stats.new_connection()
    for k in range(40):
        stats.measure(33.9 + k / 10)
    assert stats.source_fps() == pytest.approx(10.0)


def test_frame_clock_trusts_real_timestamps_only():
    """MJPEG over HTTP: FFmpeg's made-up 25 fps timestamps on a 10 fps stream -> arrival times. MPEG-TS: a burst of
    buffered frames, then frames at 10 fps with real timestamps -> the timestamps, continuing from arrival time."""
    fake = FrameClock()
    times = [fake.time(100.0 + k / 10, k * 40.0) for k in range(40)]
    assert np.allclose(np.diff(times), 0.1)
    real = FrameClock()
    arrivals = [50.0] * 8 + [50.0 + k / 10 for k in range(1, 40)]  # 8 frames at once, then one per 100 ms
    times = [real.time(a, k * 100.0) for k, a in enumerate(arrivals)]
    assert times == sorted(times) and np.allclose(np.diff(times[-15:]), 0.1)
    real.new_session()  # a reconnect: arrival times again until the new connection's timestamps are judged
    assert real.time(60.0, 0.0) == pytest.approx(10.0)


def test_on_event_failures_and_slowness_are_logged_and_never_stop_anything(tmp_path, monkeypatch):
    monkeypatch.setattr(on_event, "ON_EVENT_TIMEOUT_S", 0.5)
    lines: list[str] = []
    fails = (sys.executable, "-c", "import sys; sys.exit('no route to the alarm panel')")
    failing = on_event.OnEventRunner(fails, lines.append)
    failing.submit({"event": 1})
    failing.close()
    slow = on_event.OnEventRunner((sys.executable, "-c", "import time; time.sleep(30)"), lines.append)
    slow.submit({"event": 2})
    slow.close()
    assert lines == [
        f"--on_event {sys.executable}: exit status 1 (event 1) no route to the alarm panel",
        f"--on_event {sys.executable}: running over 0.5 s, killed (event 2)",
    ]
    assert (failing.ran, failing.failed, slow.failed) == (1, 1, 1)


def test_rolling_video_curve_keeps_memory_flat(tmp_path):
    with HeatmapVideoWriter(
        tmp_path / "v.mp4", 10.0, vmax=1.0, size=(32, 48), strip=ScoreStrip(20, rolling=True), codec="mp4v"
    ) as writer:
        for i in range(60):
            writer.add(np.zeros((32, 48, 3)), np.zeros((32, 48)), float(i), number=1000 + i)
        assert len(writer._scores) == 20 and writer._number == 1059
    assert (tmp_path / "v.mp4").stat().st_size > 0
