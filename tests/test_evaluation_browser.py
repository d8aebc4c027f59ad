"""The result pages and heatmap videos as a browser shows them (headless Chromium).

Without chromium these tests skip, except under CI (CI=true), where they fail: .ci/run installs it.
"""

from __future__ import annotations

import shutil
import subprocess

import cv2
import helpers
import numpy as np
import pytest
from helpers import chromium_args, chromium_path, chromium_probe, with_probe

from evaluation.video import HeatmapVideoWriter, ScoreStrip, choose_vmax, video_backend

FRAMES, SIZE = 20, (64, 96)


def _heatmap_video(path, fps: float, codec: str | None) -> HeatmapVideoWriter:
    """FRAMES random frames of SIZE (H, W) through HeatmapVideoWriter; the closed writer."""
    rng = np.random.default_rng(0)
    errs = [rng.random(SIZE) * 0.02 for _ in range(FRAMES)]
    with HeatmapVideoWriter(
        path, fps, vmax=choose_vmax(errs), size=SIZE, strip=ScoreStrip(FRAMES, threshold=0.5), codec=codec
    ) as writer:
        for i, err in enumerate(errs):
            writer.add(rng.random((*SIZE, 3)), err, score=i / (FRAMES - 1), label=int(i >= 10))
    return writer


def _video_page(folder, video_name: str):
    """A page with one <video preload="auto"> of `video_name` (same folder) and the media probe."""
    page = folder / "page.html"
    page.write_text(
        f'<!doctype html><html><body><video preload="auto" src="{video_name}"></video></body></html>', encoding="utf-8"
    )
    return with_probe(page)


@pytest.mark.parametrize("ci, outcome", [(None, pytest.skip.Exception), ("true", pytest.fail.Exception)])
def test_missing_chromium_skips_but_fails_under_ci(monkeypatch, tmp_path, ci, outcome):
    monkeypatch.setattr(helpers, "CHROMIUM", str(tmp_path / "no-chromium"))
    monkeypatch.setattr(shutil, "which", lambda name: None)
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="chromium is not installed"):
        chromium_path()


# ----------------------------------------------------------------------------- rendering in a browser


def test_index_renders_in_headless_chromium(written_report, tmp_path):
    _, index, _, _ = written_report
    shot = tmp_path / "shot.png"
    subprocess.run(
        chromium_args(tmp_path, f"--screenshot={shot}", "--window-size=1200,2000", index.resolve().as_uri()),
        check=True,
        timeout=60,
        capture_output=True,
    )
    image = cv2.imread(str(shot))
    assert image is not None and image.std() > 10  # a blank (all-white) page has std ~0


def test_report_media_loads_in_headless_chromium(written_report, tmp_path):
    """Every <video> of the eval report plays (duration > 0) and every <img> decodes (naturalWidth > 0)."""
    _, index, _, _ = written_report
    seen = chromium_probe(with_probe(index), tmp_path)
    assert seen["videos"] and seen["images"], seen  # the fixture's report links one video and plots
    for v in seen["videos"]:
        assert v["error"] is None and v["duration"] and v["duration"] > 0 and v["width"] > 0, v
    for img in seen["images"]:
        assert img["width"] > 0, img


@pytest.mark.skipif(video_backend() != "h264", reason="PyAV with libx264 is not installed (pip install av)")
@pytest.mark.parametrize("fps", [10.0, 29.97])
def test_heatmap_video_plays_in_headless_chromium(tmp_path, fps):
    writer = _heatmap_video(tmp_path / "v.mp4", fps, codec=None)
    assert writer.codec == "h264"
    (seen,) = chromium_probe(_video_page(tmp_path, "v.mp4"), tmp_path)["videos"]
    assert seen["error"] is None, seen
    assert seen["duration"] == pytest.approx(FRAMES / fps, abs=0.2), seen
    assert (seen["width"], seen["height"]) == writer.frame_size


def test_mp4v_fallback_fails_the_browser_probe(tmp_path):
    """The probe really tests playability: OpenCV's 'mp4v' (the fallback) is refused by Chromium."""
    _heatmap_video(tmp_path / "v.mp4", 10.0, codec="mp4v")
    (seen,) = chromium_probe(_video_page(tmp_path, "v.mp4"), tmp_path)["videos"]
    assert seen["error"] == 4 and seen["duration"] is None, seen  # 4: MEDIA_ERR_SRC_NOT_SUPPORTED
