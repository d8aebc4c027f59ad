"""Tests for synthetic/ (the embedded default dataset) and for the fake dataset layouts in tests/fake_layouts.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import fake_layouts as F
import numpy as np
import pytest
import scipy.io

import synthetic as S
from errors import FFPError
from synthetic.scene import ANOMALY_KINDS, ON_SCREEN, WALKER_MAX_ANGLE_DEG, WALKER_SPEED

SMALL = dict(n_train=2, n_test=3, n_frames=30)  # one video of each anomaly kind, fast to write


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    """A small synthetic dataset shared by the read-only tests."""
    return S.ensure_synthetic(tmp_path_factory.mktemp("small"), seed=3, **SMALL)


def _files(dataset: Path) -> dict[str, bytes]:
    """relative path -> bytes of every file under `dataset`."""
    return {str(p.relative_to(dataset)): p.read_bytes() for p in sorted(dataset.rglob("*")) if p.is_file()}


def _gt(dataset: Path) -> list[np.ndarray]:
    """Per-test-video (2, K) intervals from synthetic.mat, read as the FFP code reads ped2.mat."""
    gt = scipy.io.loadmat(str(dataset / "synthetic.mat"))["gt"]
    assert gt.dtype == object and gt.shape == (1, SMALL["n_test"])
    return [np.asarray(v) for v in gt.ravel()]


def _mask_labels(mask_dir: Path, n_frames: int) -> np.ndarray:
    """Frame labels from a folder of 1-based NNN.png masks: 1 iff any nonzero pixel."""
    masks = [cv2.imread(str(mask_dir / f"{f + 1:03d}.png"), cv2.IMREAD_UNCHANGED) for f in range(n_frames)]
    assert all(m.shape == S.SYNTHETIC_VIDEO_SIZE and m.dtype == np.uint8 for m in masks)
    assert set(np.unique(np.stack(masks))) <= {0, 255}
    return np.array([int(m.any()) for m in masks])


# ------------------------------------------------------------------------------------------- layout and labels


def test_layout_file_names_and_image_format(small):
    n = SMALL["n_frames"]
    for split, count in (("training", SMALL["n_train"]), ("testing", SMALL["n_test"])):
        videos = sorted(p.name for p in (small / split / "frames").iterdir())
        assert videos == [f"{i + 1:02d}" for i in range(count)]
        for video in videos:
            names = sorted(p.name for p in (small / split / "frames" / video).iterdir())
            assert names == [f"{f:03d}.jpg" for f in range(n)]
    frame = cv2.imread(str(small / "testing" / "frames" / "01" / "000.jpg"), cv2.IMREAD_UNCHANGED)
    assert frame.shape == (*S.SYNTHETIC_VIDEO_SIZE, 3) and frame.dtype == np.uint8
    assert np.abs(frame.astype(int) - frame[..., :1]).max() <= 2  # grey content in 3 channels
    masks = sorted(p.name for p in (small / "testing" / "UCSD_pixel_masks").iterdir())
    assert masks == [f"Test{i + 1:03d}_gt" for i in range(SMALL["n_test"])]
    marker = json.loads((small / S.MARKER_NAME).read_text())
    assert marker["seed"] == 3 and marker["version"] == S.GENERATOR_VERSION


def test_mat_intervals_agree_with_masks_on_every_frame(small):
    n = SMALL["n_frames"]
    for i, intervals in enumerate(_gt(small)):
        assert intervals.shape[0] == 2 and intervals.shape[1] >= 1
        assert (intervals[0] >= 1).all() and (intervals[1] <= n).all() and (intervals[0] <= intervals[1]).all()
        from_mat = F.intervals_to_labels(intervals, n)
        from_masks = _mask_labels(small / "testing" / "UCSD_pixel_masks" / f"Test{i + 1:03d}_gt", n)
        np.testing.assert_array_equal(from_mat, from_masks)
        assert 0 < from_mat.sum() < n, f"test video {i + 1} needs abnormal and normal frames"


def test_intervals_round_trip():
    labels = np.array([1, 1, 0, 0, 1, 0, 1, 1])
    intervals = S.labels_to_intervals(labels)
    np.testing.assert_array_equal(intervals, [[1, 5, 7], [2, 5, 8]])
    np.testing.assert_array_equal(F.intervals_to_labels(intervals, len(labels)), labels)
    np.testing.assert_array_equal(F.intervals_to_labels(np.array([3, 4]), 5), [0, 0, 1, 1, 0])  # squeezed (2,)


def test_default_counts(tmp_path):
    """(Generation time is a benchmark: bench/data_speed.py.)"""
    dataset = S.ensure_synthetic(tmp_path)
    assert dataset == tmp_path / "synthetic"
    assert len(list((dataset / "training" / "frames").iterdir())) == 8
    assert len(list((dataset / "testing" / "frames").iterdir())) == 6
    assert all(len(list(d.iterdir())) == 120 for d in (dataset / "testing" / "frames").iterdir())
    assert scipy.io.loadmat(str(dataset / "synthetic.mat"))["gt"].shape == (1, 6)


# ------------------------------------------------------------------------------------------- determinism & caching


def test_same_seed_gives_identical_files_and_other_seed_differs(tmp_path):
    args = dict(n_train=1, n_test=2, n_frames=20)
    a = _files(S.ensure_synthetic(tmp_path / "a", seed=7, **args))
    b = _files(S.ensure_synthetic(tmp_path / "b", seed=7, **args))
    c = _files(S.ensure_synthetic(tmp_path / "c", seed=8, **args))
    assert a.keys() == b.keys() == c.keys()
    for name in a:
        if name.endswith(".mat"):  # savemat stamps the creation time in its header: compare content instead
            ga, gb = (scipy.io.loadmat(str(tmp_path / d / "synthetic" / name))["gt"].ravel() for d in "ab")
            assert all(np.array_equal(x, y) for x, y in zip(ga, gb))
        else:
            assert a[name] == b[name], name
    jpgs = [n for n in a if n.endswith(".jpg")]
    assert sum(a[n] != c[n] for n in jpgs) == len(jpgs)


def test_in_memory_video_matches_written_video(small):
    video = S.generate_video(seed=3, split="testing", index=1, n_frames=SMALL["n_frames"])
    assert video.frames.shape == (SMALL["n_frames"], *S.SYNTHETIC_VIDEO_SIZE) and video.frames.dtype == np.uint8
    np.testing.assert_array_equal(video.labels, F.intervals_to_labels(_gt(small)[1], SMALL["n_frames"]))
    written = cv2.imread(str(small / "testing" / "frames" / "02" / "005.jpg"), cv2.IMREAD_GRAYSCALE)
    assert np.abs(written.astype(int) - video.frames[5]).mean() < 2.0  # equal up to JPEG loss


def test_second_call_is_a_no_op(small):
    marker, frame = small / S.MARKER_NAME, small / "training" / "frames" / "01" / "000.jpg"
    before = (marker.stat().st_mtime_ns, frame.stat().st_mtime_ns)
    assert S.ensure_synthetic(small.parent, seed=3, **SMALL) == small
    assert (marker.stat().st_mtime_ns, frame.stat().st_mtime_ns) == before
    assert sorted(p.name for p in small.parent.iterdir()) == ["synthetic"]  # no temporary siblings left


def test_changed_seed_or_missing_file_regenerates(tmp_path):
    args = dict(n_train=1, n_test=1, n_frames=20)
    dataset = S.ensure_synthetic(tmp_path, seed=1, **args)
    S.ensure_synthetic(tmp_path, seed=2, **args)
    assert json.loads((dataset / S.MARKER_NAME).read_text())["seed"] == 2
    frame = dataset / "testing" / "frames" / "01" / "004.jpg"
    frame.unlink()
    S.ensure_synthetic(tmp_path, seed=2, **args)
    assert frame.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synthetic"]


def test_foreign_folder_is_never_overwritten(tmp_path):
    (tmp_path / "synthetic").mkdir()
    (tmp_path / "synthetic" / "mine.txt").write_text("user data")
    with pytest.raises(FFPError, match="marker"):
        S.ensure_synthetic(tmp_path, n_train=1, n_test=1, n_frames=20)
    assert (tmp_path / "synthetic" / "mine.txt").read_text() == "user data"


def test_crash_leaves_no_half_dataset(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise KeyboardInterrupt("simulated crash while writing the .mat")

    monkeypatch.setattr(S.scipy.io, "savemat", boom)
    with pytest.raises(KeyboardInterrupt):
        S.ensure_synthetic(tmp_path, n_train=1, n_test=1, n_frames=20)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kwargs, flag",
    [
        (dict(n_frames=5), "n_frames"),
        (dict(seed=-1), "seed"),
        (dict(n_test=0), "n_test"),
        (dict(size=(16, 16)), "size"),
    ],
)
def test_bad_arguments_raise_ffp_error(tmp_path, kwargs, flag):
    with pytest.raises(FFPError, match=flag):
        S.ensure_synthetic(tmp_path, **kwargs)


# ------------------------------------------------------------------------------------------- scene statistics


@pytest.fixture(scope="module")
def videos() -> dict[str, list[S.SyntheticVideo]]:
    """Seed-0 videos in memory: 4 training, 6 test (each anomaly kind twice)."""
    bg = S.make_background(0)
    return {
        "training": [S.generate_video(0, "training", i, 120, background=bg) for i in range(4)],
        "testing": [S.generate_video(0, "testing", i, 120, background=bg) for i in range(6)],
    }


def _walkers(video_list):
    return [t for v in video_list for t in v.tracks if t.kind == "walker"]


def test_training_videos_hold_only_normal_walkers(videos):
    for video in videos["training"]:
        assert video.anomaly is None and not video.labels.any() and not video.masks.any()
        assert all(not t.abnormal and t.kind == "walker" for t in video.tracks)


def test_walkers_move_along_the_walkway_at_walking_pace(videos):
    for track in _walkers(videos["training"] + videos["testing"]):
        assert WALKER_SPEED[0] <= track.speed <= WALKER_SPEED[1]
        angle = np.degrees(np.arctan2(abs(track.velocity[0]), abs(track.velocity[1])))
        assert angle <= WALKER_MAX_ANGLE_DEG + 1e-9
    for video in videos["training"]:
        walkers = [t for t in video.tracks if t.kind == "walker"]
        on_screen = np.stack([t.visible(120, S.SYNTHETIC_VIDEO_SIZE) for t in walkers]).sum(axis=0)
        assert ON_SCREEN[0] <= on_screen.min() and on_screen.max() <= ON_SCREEN[1]


def test_test_videos_mix_all_anomaly_kinds(videos):
    kinds = [v.anomaly for v in videos["testing"]]
    assert sorted(set(kinds)) == sorted(ANOMALY_KINDS)
    for video in videos["testing"]:
        abnormal = [t for t in video.tracks if t.abnormal]
        assert abnormal and {t.kind for t in abnormal} == {video.anomaly}
        assert 0 < video.labels.sum() < len(video.labels)


def test_anomalies_are_what_they_claim(videos):
    walkers = _walkers(videos["training"])
    fastest_walker = max(t.speed for t in walkers)
    largest_walker = max(t.area for t in walkers)
    for video in videos["testing"]:
        in_abnormal = [t for t in video.tracks if (t.visible(120, S.SYNTHETIC_VIDEO_SIZE) & (video.labels == 1)).any()]
        anomalies = [t for t in in_abnormal if t.abnormal]
        if video.anomaly == "bike":
            assert max(t.speed for t in in_abnormal) >= 2.5 * fastest_walker
        elif video.anomaly == "cart":
            assert min(t.area for t in anomalies) >= 3.0 * largest_walker
        else:  # crosser: mostly horizontal and faster than any walker
            assert all(abs(t.velocity[0]) > 2 * abs(t.velocity[1]) for t in anomalies)
            assert min(t.speed for t in anomalies) > fastest_walker


def test_background_is_static_and_shared(videos):
    bg = S.make_background(0)
    for video in videos["training"][:2] + videos["testing"][:1]:
        median = np.median(video.frames, axis=0)
        assert np.abs(median - bg).mean() < 3.0  # objects are transient, the scene under them is fixed


# ------------------------------------------------------------------------------------------- fake layouts


def _check_frames(result: dict, split_dir: Path, videos: dict[str, int], suffix: str) -> None:
    """Every listed video folder holds exactly its frame count of `suffix` files, in brightness order."""
    for video, count in videos.items():
        frames = sorted((split_dir / video).glob(f"*{suffix}"))
        assert len(frames) == count
        first, last = (cv2.imread(str(frames[j]), cv2.IMREAD_UNCHANGED) for j in (0, -1))
        assert first.shape[:2] == result["frame_size"]
        assert abs(first.mean() - F.frame_mean(0)) < 3 and abs(last.mean() - F.frame_mean(count - 1)) < 3


def _check_files(result: dict) -> None:
    assert result["files"] and all(Path(p).is_file() for p in result["files"])
    assert set(result["labels"]) == set(result["test_videos"])
    for video, labels in result["labels"].items():
        assert labels.dtype.kind == "i" and len(labels) == result["test_videos"][video]
        assert 0 < labels.sum() < len(labels)


@pytest.mark.parametrize("with_frames_level", [True, False])
def test_fake_ped2_layout(tmp_path, with_frames_level):
    result = F.write_ped2_layout(tmp_path, name="ped2", with_frames_level=with_frames_level)
    _check_files(result)
    sub = "frames" if with_frames_level else ""
    _check_frames(result, tmp_path / "ped2" / "training" / sub, result["train_videos"], ".jpg")
    _check_frames(result, tmp_path / "ped2" / "testing" / sub, result["test_videos"], ".jpg")
    gt = scipy.io.loadmat(str(tmp_path / "ped2" / "ped2.mat"), squeeze_me=True)["gt"]
    assert gt[0].shape == (2,) and gt[1].shape == (2, 2)
    for intervals, (video, n) in zip(gt, result["test_videos"].items()):
        np.testing.assert_array_equal(F.intervals_to_labels(intervals, n), result["labels"][video])


def test_fake_shanghaitech_layout(tmp_path):
    result = F.write_shanghaitech_layout(tmp_path)
    _check_files(result)
    assert list(result["test_videos"]) == ["01_0014", "02_0015"] and "01_001" in result["train_videos"]
    _check_frames(result, tmp_path / "shanghaitech" / "testing" / "frames", result["test_videos"], ".jpg")
    for video, labels in result["labels"].items():
        np.testing.assert_array_equal(
            np.load(tmp_path / "shanghaitech" / "testing" / "test_frame_mask" / f"{video}.npy"), labels
        )


def test_fake_avenue_layout(tmp_path):
    result = F.write_avenue_layout(tmp_path)
    _check_files(result)
    _check_frames(result, tmp_path / "avenue" / "training" / "frames", result["train_videos"], ".jpg")
    for i, labels in enumerate(result["labels"].values()):
        vol = scipy.io.loadmat(str(tmp_path / "avenue" / "testing_label_mask" / f"{i + 1}_label.mat"))["volLabel"]
        assert vol.shape == (1, len(labels)) and vol[0, 0].shape == result["frame_size"]
        np.testing.assert_array_equal([int(m.any()) for m in vol[0]], labels)


def test_fake_ucsd_original_layout_with_m_file(tmp_path):
    result = F.write_ucsd_original_layout(tmp_path, name="UCSDped2", use_m_file=True)
    _check_files(result)
    test_dir = tmp_path / "UCSDped2" / "Test"
    _check_frames(result, test_dir, result["test_videos"], ".tif")
    assert cv2.imread(str(test_dir / "Test001" / "001.tif"), cv2.IMREAD_UNCHANGED).ndim == 2
    text = (test_dir / "UCSDped2.m").read_text()
    assert text.count("TestVideoFile{end+1}.gt_frame") == len(result["test_videos"])
    for line, (video, n) in zip(re.findall(r"gt_frame = \[(.*)\];", text), result["test_videos"].items()):
        intervals = np.array([[int(x) for x in r.split(":")] for r in line.split(",")]).T
        np.testing.assert_array_equal(F.intervals_to_labels(intervals, n), result["labels"][video])


@pytest.mark.parametrize("mask_ext", ["bmp", "png"])
def test_fake_ucsd_original_layout_with_masks(tmp_path, mask_ext):
    result = F.write_ucsd_original_layout(tmp_path, name="UCSDped1", mask_ext=mask_ext, use_m_file=False)
    _check_files(result)
    test_dir = tmp_path / "UCSDped1" / "Test"
    assert not list(test_dir.glob("*.m"))
    assert (test_dir / "Test002_gt" / f"frame001.{mask_ext}").is_file()  # the real release's naming quirk
    for video, labels in result["labels"].items():
        masks = sorted((test_dir / f"{video}_gt").glob(f"*.{mask_ext}"))
        found = [int(cv2.imread(str(m), cv2.IMREAD_GRAYSCALE).any()) for m in masks]
        np.testing.assert_array_equal(found, labels)
