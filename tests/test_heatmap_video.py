"""The heatmap video writer: frames, sizes, scales, failure handling."""
from __future__ import annotations


import numpy as np
import pytest

from evaluation.video import HeatmapVideoWriter, VmaxEstimator, choose_vmax
from helpers import count_frames, leftovers, write_heatmap
from utils import FFPError


def test_heatmap_video_frames_and_size(tmp_path):
    path = tmp_path / "v.mp4"
    writer = write_heatmap(path, n=7, size=(32, 48), labels=[0, 0, 1, 1, 0, 0, 0])
    # 32 px high -> integer upscale 6 -> panels of 192 x 288; three panels side by side; strip of 80 below.
    assert writer.panel_size == (192, 288)
    assert count_frames(path) == (7, 3 * 288, 192 + 80)
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
    batched.add(np.stack(maps[:20]))   # a B x H x W batch counts as 20 frames
    batched.add(np.stack(maps[20:]))
    assert batched.value() == pytest.approx(est.value(), rel=0.02)


def test_heatmap_writer_score_range_threshold_first_frame(tmp_path):
    path = tmp_path / "z.mp4"
    with HeatmapVideoWriter(path, vmax=0.01, size=(32, 48), curve_length=5, score_range=(-2.0, 8.0),
                            threshold=3.0, first_frame=4) as writer:
        writer.add_batch(np.zeros((5, 32, 48, 3), np.uint8), np.zeros((5, 32, 48)), [-1.0, 0.0, 2.0, 5.0, 9.0])
    assert count_frames(path)[0] == 5
    with pytest.raises(ValueError, match="score_range"):
        HeatmapVideoWriter(tmp_path / "bad.mp4", vmax=0.01, size=(32, 48), score_range=(1.0, 1.0))
