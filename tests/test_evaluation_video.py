"""The heatmap video writer: frames, sizes, scales, codec (H.264 or the mp4v fallback), failure handling."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from helpers import count_frames, leftovers, write_heatmap

import evaluation.video as video
import evaluation.video_sinks as video_sinks
from errors import FFPError
from evaluation.video import STRIP_H, HeatmapVideoWriter, ScoreStrip, VmaxEstimator, choose_vmax, video_backend

needs_h264 = pytest.mark.skipif(video_backend() != "h264", reason="PyAV with libx264 is not installed (pip install av)")


def test_heatmap_video_frames_and_size(tmp_path):
    path = tmp_path / "v.mp4"
    writer = write_heatmap(path, n=7, size=(32, 48), labels=[0, 0, 1, 1, 0, 0, 0])
    # 32 px high -> integer upscale 6 -> panels of 192 x 288; three panels side by side; strip of 100 below.
    assert writer.panel_size == (192, 288) and STRIP_H == 100
    assert count_frames(path) == (7, 3 * 288, 192 + STRIP_H)
    assert leftovers(tmp_path) == []


def test_heatmap_video_removed_on_exception(tmp_path):
    path = tmp_path / "v.mp4"
    with pytest.raises(RuntimeError):
        with HeatmapVideoWriter(path, vmax=0.01, size=(16, 16)) as writer:
            writer.add(np.zeros((16, 16, 3)), np.zeros((16, 16)), 0.5, None)
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_heatmap_writer_cannot_open(tmp_path):
    with pytest.raises(FFPError, match="mp4"):
        HeatmapVideoWriter(tmp_path / "v.notavideo", vmax=0.01, size=(16, 16))
    assert list(tmp_path.iterdir()) == []


def test_choose_vmax_percentile():
    # Values 0.00 .. 0.99; the 50th percentile of 100 evenly spaced values is (0.49 + 0.50) / 2.
    errors = [np.arange(50).reshape(5, 10) / 100, np.arange(50, 100).reshape(5, 10) / 100]
    assert choose_vmax(errors, q=50) == pytest.approx(0.495)
    assert choose_vmax([np.zeros((4, 4))]) > 0  # a perfect prediction still gives a usable scale


def test_vmax_estimator_bounded_and_close_to_exact():
    rng = np.random.default_rng(0)
    maps = [rng.random((128, 128)) ** 3 for _ in range(40)]
    est = VmaxEstimator(q=99.0, max_samples=50_000)
    for m in maps:
        est.add(m)
    assert sum(c.size for c in est._chunks) <= 50_000 + 16384
    exact = np.percentile(np.concatenate([m.ravel() for m in maps]), 99.0)
    assert est.value() == pytest.approx(exact, rel=0.02)
    batched = VmaxEstimator(q=99.0, max_samples=50_000)
    batched.add(np.stack(maps[:20]))  # a B x H x W batch counts as 20 frames
    batched.add(np.stack(maps[20:]))
    assert batched.value() == pytest.approx(est.value(), rel=0.02)


def test_heatmap_writer_score_range_threshold_first_frame(tmp_path):
    path = tmp_path / "z.mp4"
    with HeatmapVideoWriter(path, vmax=0.01, size=(32, 48), strip=ScoreStrip(5, (-2.0, 8.0), 3.0, 4)) as writer:
        writer.add_batch(np.zeros((5, 32, 48, 3), np.uint8), np.zeros((5, 32, 48)), [-1.0, 0.0, 2.0, 5.0, 9.0])
    assert count_frames(path)[0] == 5
    with pytest.raises(ValueError, match="score_range"):
        HeatmapVideoWriter(tmp_path / "bad.mp4", vmax=0.01, size=(32, 48), strip=ScoreStrip(score_range=(1.0, 1.0)))


# ----------------------------------------------------------------------------- codec: H.264 for browsers


@needs_h264
def test_h264_yuv420p_faststart_exact_rate(tmp_path):
    import av

    path = tmp_path / "v.mp4"
    with HeatmapVideoWriter(path, 29.97, vmax=0.01, size=(33, 47)) as writer:  # odd sizes -> even frame
        writer.add_batch(np.zeros((6, 33, 47, 3), np.uint8), np.zeros((6, 33, 47)), np.linspace(0, 1, 6))
    assert writer.codec == "h264" and writer.fps == Fraction(2997, 100)
    assert all(n % 2 == 0 for n in writer.frame_size)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.format.name) == ("h264", "yuv420p")
        assert (stream.width, stream.height) == writer.frame_size
        assert stream.average_rate == Fraction(2997, 100)
        assert sum(1 for _ in container.decode(stream)) == 6
    head = path.read_bytes()
    assert head.index(b"moov") < head.index(b"mdat")  # faststart: the index comes first, a browser can start
    assert leftovers(tmp_path) == []


def test_mp4v_fallback_warns_once(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(video_sinks, "h264_module", lambda: None)  # as if PyAV were not installed
    monkeypatch.setattr(video_sinks, "_FALLBACK_WARNED", False)
    assert video_backend() == "mp4v"
    for name in ("a.mp4", "b.mp4"):
        writer = write_heatmap(tmp_path / name, n=3)
        assert writer.codec == "mp4v"
        assert count_frames(tmp_path / name)[0] == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "browsers cannot play" in err[0] and "pip install av" in err[0]
    with pytest.raises(ValueError, match="pip install av"):
        HeatmapVideoWriter(tmp_path / "c.mp4", vmax=0.01, size=(16, 16), codec="h264")
    with pytest.raises(ValueError, match="codec"):
        HeatmapVideoWriter(tmp_path / "c.mp4", vmax=0.01, size=(16, 16), codec="vp9")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "b.mp4"]


# ----------------------------------------------------------------------------- write failures


def _add_frames(writer: HeatmapVideoWriter, n: int = 3) -> None:
    writer.add_batch(np.zeros((n, 16, 16, 3), np.uint8), np.zeros((n, 16, 16)), np.zeros(n))


@needs_h264
def test_h264_write_failure_is_one_ffp_error(tmp_path, monkeypatch, capsys):
    calls = []

    def full_disk(self, packets):
        calls.append(1)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(video_sinks.H264Sink, "_mux", full_disk)
    path = tmp_path / "v.mp4"
    with pytest.raises(FFPError) as info:
        with HeatmapVideoWriter(path, vmax=0.01, size=(16, 16), codec="h264") as writer:
            _add_frames(writer, 5)
    assert str(path) in str(info.value) and "No space left on device" in str(info.value)
    assert len(calls) == 1  # the first failure stops the writer: no retry, no flood
    assert list(tmp_path.iterdir()) == []
    assert capsys.readouterr().err == ""
    writer.close()  # close/abort after a failure: nothing more to do, no error
    writer.abort()


@pytest.mark.parametrize("codec", ["h264", "mp4v"])
def test_failure_when_finishing_is_one_ffp_error(tmp_path, monkeypatch, codec):
    if codec == "h264" and video_backend() != "h264":
        pytest.skip("PyAV with libx264 is not installed")
    sink = video_sinks.H264Sink if codec == "h264" else video_sinks.Mp4vSink
    real_finish = sink.finish

    def finish_then_fail(self):
        real_finish(self)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sink, "finish", finish_then_fail)
    path = tmp_path / "v.mp4"
    writer = HeatmapVideoWriter(path, vmax=0.01, size=(16, 16), codec=codec)
    _add_frames(writer)
    with pytest.raises(FFPError, match="No space left on device") as info:
        writer.close()
    assert str(path) in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_mp4v_silently_dropped_frames_are_caught(tmp_path, monkeypatch):
    # cv2.VideoWriter.write returns nothing even when the disk is full; close() checks the file instead.
    monkeypatch.setattr(video_sinks.Mp4vSink, "_write_frame", lambda self, bgr: None)
    path = tmp_path / "v.mp4"
    with pytest.raises(FFPError, match="0 of 3 frames") as info:
        with HeatmapVideoWriter(path, vmax=0.01, size=(16, 16), codec="mp4v") as writer:
            _add_frames(writer)
    assert str(path) in str(info.value)
    assert list(tmp_path.iterdir()) == []


_FILE_SIZE_LIMITED = """
import resource, signal, sys
import numpy as np
from evaluation.video import HeatmapVideoWriter
from errors import FFPError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # writes past the limit then fail with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (30000, 30000))
rng = np.random.default_rng(0)
try:
    with HeatmapVideoWriter({path!r}, vmax=0.01, size=(64, 64), codec={codec!r}) as writer:
        for _ in range(40):
            writer.add(rng.random((64, 64, 3)), rng.random((64, 64)) * 0.01, 0.5)
except FFPError as exc:
    print("FFPError:", exc)
"""


@pytest.mark.parametrize("codec", ["h264", "mp4v"])
def test_real_write_failure_file_size_limit(tmp_path, codec):
    """A real failing write (RLIMIT_FSIZE in a child process, as a full disk would): one FFPError, no file."""
    if codec == "h264" and video_backend() != "h264":
        pytest.skip("PyAV with libx264 is not installed")
    path = tmp_path / "out" / "v.mp4"
    root = str(Path(video.__file__).resolve().parents[1])
    done = subprocess.run(
        [sys.executable, "-c", _FILE_SIZE_LIMITED.format(path=str(path), codec=codec)],
        cwd=root,  # python -c puts its working folder first on sys.path
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("FFPError:") and str(path) in lines[0], done.stdout
    assert done.stderr == ""  # no per-frame warnings from OpenCV or FFmpeg either
    assert list((tmp_path / "out").iterdir()) == []


def test_strip_has_axis_labels_and_threshold_label():
    writer = object.__new__(HeatmapVideoWriter)  # only the strip's state: no file is opened
    writer.score_range, writer.threshold, writer.first_frame, writer.curve_length = (-2.0, 8.0), 3.0, 0, 10
    writer._scores, writer._labels = [0.0, 1.0, 5.0], [0, 0, 1]
    writer._number = 2  # the counter's frame number (set by add)
    strip = np.zeros((STRIP_H, 600, 3), np.uint8)
    writer._draw_strip(strip)
    bright = strip.max(axis=2) > 150
    assert bright[20:STRIP_H, :14].any()  # the '8' and '-2' labels at the left edge
    red = (strip[..., 2] > 150) & (strip[..., 0] < 120) & (strip[..., 1] < 120)
    line_only, with_label = red[24:, 420:494].sum(), red[24:, 520:594].sum()  # below the header text
    assert line_only > 0 and with_label > 1.5 * line_only  # 'threshold 3' by the line's right end
