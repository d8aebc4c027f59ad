"""Loaders on every supported on-disk layout (fake, tiny) and on the real label files (exact counts); frames of
mixed sizes, bit depths, and damaged or empty image files."""

import dataclasses
import shutil
from pathlib import Path

import cv2
import fake_layouts as fl
import numpy as np
import pytest
import torch

from config import build_config
from dataset import EpochShuffleSampler, LabelNotes, TrainWindows, find_dataset, read_frame, video_frame_batches
from dataset.label_files import read_avenue_dir, read_frame_mask_dir, read_mat_entries, read_ucsd_m_entries
from dataset.label_values import interval_labels
from errors import FFPError


def assert_matches(files, written):
    """The loader found exactly the videos, frame counts and labels the fake writer produced."""
    assert {v.name: len(v) for v in files.train} == written["train_videos"]
    assert {v.name: len(v) for v in files.test} == written["test_videos"]
    for v in files.test:
        np.testing.assert_array_equal(v.labels, written["labels"][v.name])


@pytest.mark.parametrize("with_frames_level", [True, False])
def test_ped2_layouts(tmp_path, with_frames_level):
    written = fl.write_ped2_layout(tmp_path, with_frames_level=with_frames_level)
    files = find_dataset(tmp_path, "ped2")
    assert files.layout == ("frames" if with_frames_level else "flat")
    assert_matches(files, written)


def test_shanghaitech_layout(tmp_path):
    written = fl.write_shanghaitech_layout(tmp_path)
    assert_matches(find_dataset(tmp_path, "shanghaitech"), written)


def test_avenue_layout(tmp_path):
    written = fl.write_avenue_layout(tmp_path)
    assert_matches(find_dataset(tmp_path, "avenue"), written)


@pytest.mark.parametrize("use_m_file,mask_ext", [(True, "bmp"), (False, "bmp"), (False, "png")])
def test_ucsd_original_layout(tmp_path, use_m_file, mask_ext):
    written = fl.write_ucsd_original_layout(tmp_path, use_m_file=use_m_file, mask_ext=mask_ext)
    files = find_dataset(tmp_path, "ped2")
    assert files.layout == "ucsd"
    assert_matches(files, written)


def test_frames_are_rgb_resized_and_ordered(tmp_path):
    fl.write_ucsd_original_layout(tmp_path)  # single-channel TIFFs
    files = find_dataset(tmp_path, "ped2")
    frame = read_frame(files.test[0].source.files[3], 32, 48)
    assert frame.shape == (32, 48, 3) and frame.dtype == np.uint8
    assert np.array_equal(frame[..., 0], frame[..., 1])  # gray repeated to 3 channels
    means = [read_frame(p, 24, 36).mean() for p in files.test[0].source.files]
    expected = [fl.frame_mean(j) for j in range(len(means))]
    np.testing.assert_allclose(means, expected, atol=3)


def test_label_count_mismatch_names_video_and_counts(tmp_path):
    written = fl.write_shanghaitech_layout(tmp_path)
    name = next(iter(written["test_videos"]))
    n = written["test_videos"][name]
    video_dir = written["dataset_dir"] / "testing" / "frames" / name
    sorted(video_dir.iterdir())[-1].unlink()
    with pytest.raises(FFPError, match=rf"test video {name} \(labels .*{name}.npy.*\): {n} labels but {n - 1} frames"):
        find_dataset(tmp_path, "shanghaitech")


def test_interval_beyond_video_end(tmp_path):
    written = fl.write_ped2_layout(tmp_path)
    video_dir = written["dataset_dir"] / "testing" / "frames" / "02"  # its interval runs to the last frame
    sorted(video_dir.iterdir())[-1].unlink()
    with pytest.raises(FFPError, match="test video 02 .*: interval .* outside the video's"):
        find_dataset(tmp_path, "ped2")


def test_missing_root_and_unknown_layout(tmp_path):
    with pytest.raises(FFPError, match="does not exist"):
        find_dataset(tmp_path / "nope", "ped2")
    (tmp_path / "ped2" / "something").mkdir(parents=True)
    with pytest.raises(FFPError, match="not found under .*looked for"):
        find_dataset(tmp_path, "ped2")


@pytest.mark.parametrize(
    "writer,name",
    [
        (fl.write_ped2_layout, "ped2"),
        (fl.write_shanghaitech_layout, "shanghaitech"),
        (fl.write_avenue_layout, "avenue"),
        (fl.write_ucsd_original_layout, "ped2"),
    ],
)
@pytest.mark.parametrize("training", ["missing", "empty", "malformed"])
def test_the_test_split_alone_is_found_for_evaluation(tmp_path, writer, name, training):
    """A download of the test videos and labels alone: evaluation finds them with their labels; training refuses,
    naming the training folders it looked in."""
    written = writer(tmp_path)
    assert written["train_videos"]  # the writer did write training videos
    train_root = next(
        p for p in Path(written["dataset_dir"]).iterdir() if p.name in ("training", "training_videos", "Train")
    )
    shutil.rmtree(train_root)
    if training == "empty":
        train_root.mkdir()
    elif training == "malformed":  # a training folder that training would refuse is never read
        (train_root / "empty video").mkdir(parents=True)
    files = find_dataset(tmp_path, name, split="test")
    assert files.train == []
    assert {v.name: len(v) for v in files.test} == written["test_videos"]
    for v in files.test:
        np.testing.assert_array_equal(v.labels, written["labels"][v.name])
    with pytest.raises(FFPError, match="looked for training videos" if training != "malformed" else "has no frames"):
        find_dataset(tmp_path, name)


def test_missing_test_split_names_the_test_folders(tmp_path):
    written = fl.write_ped2_layout(tmp_path)
    shutil.rmtree(Path(written["dataset_dir"]) / "testing")
    with pytest.raises(FFPError, match=r"looked for test videos .*<dir>/testing\[/frames\]/"):
        find_dataset(tmp_path, "ped2", split="test")
    assert find_dataset(tmp_path, "ped2").test == []  # training still finds its split


def test_missing_labels_leave_the_test_videos_unlabelled(tmp_path):
    """Labels are optional (training runs without validation, eval.py reports without AUC)."""
    written = fl.write_ped2_layout(tmp_path)
    for f in written["label_files"]:
        f.unlink()
    files = find_dataset(tmp_path, "ped2")
    assert len(files.test) == 2 and not files.labelled and files.label_source == ""
    assert all(v.labels is None for v in files.test)


def test_wrong_variable_name(tmp_path):
    import scipy.io

    written = fl.write_ped2_layout(tmp_path)
    scipy.io.savemat(written["label_files"][0], {"foo": np.zeros(3), "bar": np.ones(2)})
    with pytest.raises(FFPError, match="no variable 'gt' .* several others \\(foo, bar\\)"):
        find_dataset(tmp_path, "ped2")


def test_squeezed_single_interval():
    assert interval_labels(np.array([2, 3]), 4, "v", LabelNotes()).tolist() == [0, 1, 1, 0]
    assert interval_labels(np.array([[1, 4], [1, 4]]), 5, "v", LabelNotes()).tolist() == [1, 0, 0, 1, 0]


def test_train_windows_cover_every_window_once_per_epoch(tmp_path):
    fl.write_ped2_layout(tmp_path, n_train=2, n_frames=8)
    cfg = build_config("ped2", "tiny", {"data_root": str(tmp_path)})
    files = find_dataset(tmp_path, "ped2")
    windows = TrainWindows(files.train, cfg)
    assert len(windows) == sum(len(v) - 4 for v in files.train)  # 8-4 + 9-4 = 9
    clip = windows[0]
    assert clip.shape == (5, 3, cfg.height, cfg.width) and clip.dtype == torch.uint8
    sampler = iter(EpochShuffleSampler(len(windows), seed=3))
    epoch = [next(sampler) for _ in range(len(windows))]
    assert sorted(epoch) == list(range(len(windows)))
    again = iter(EpochShuffleSampler(len(windows), seed=3, start=4))
    assert [next(again) for _ in range(len(windows))] == (epoch + [next(sampler) for _ in range(4)])[4:]


def test_ddp_shards_do_not_overlap():
    shards = [set(list(iter_n(EpochShuffleSampler(11, seed=0, rank=r, world_size=2), 5))) for r in (0, 1)]
    assert not shards[0] & shards[1]


def iter_n(sampler, n):
    it = iter(sampler)
    return [next(it) for _ in range(n)]


def test_video_batches_in_order(tmp_path):
    fl.write_ped2_layout(tmp_path)
    cfg = build_config("ped2", "tiny", {"data_root": str(tmp_path), "height": 24 + 8, "width": 40})
    video = find_dataset(tmp_path, "ped2").test[1]
    batches = list(video_frame_batches(video, cfg, batch_size=3, workers=0))
    frames = torch.cat(batches)
    assert frames.shape[0] == len(video)
    means = frames.float().mean(dim=(1, 2, 3)).numpy()
    np.testing.assert_allclose(means, [fl.frame_mean(j) for j in range(len(video))], atol=3)


# ------------------------------------------------------------------------------------------ real data
def test_real_ped2(shared_data):
    files = find_dataset(shared_data, "ped2")
    assert len(files.train) == 16 and sum(len(v) for v in files.train) == 2550
    assert len(files.test) == 12 and sum(len(v) for v in files.test) == 2010
    assert sum(int(v.labels.sum()) for v in files.test) == 1648
    assert sum(len(v) - 4 for v in files.test) == 1962
    # The official UCSDped2.m and the pixel masks give the very same labels as ped2.mat.
    m_labels = read_ucsd_m_entries(shared_data / "ped2" / "UCSDped2.m")
    for video, intervals in zip(files.test, m_labels):
        np.testing.assert_array_equal(interval_labels(intervals, len(video), video.name, LabelNotes()), video.labels)
        assert video.masks is not None and len(video.masks) == len(video)
    assert len(read_mat_entries(shared_data / "ped2" / "ped2.mat", 12, LabelNotes())) == 12


def test_real_ped2_masks_agree_with_labels(shared_data):
    from dataset import labels_from_masks

    files = find_dataset(shared_data, "ped2")
    for video in files.test[5:7]:  # Test006 uses the frameNNN.png naming quirk
        np.testing.assert_array_equal(labels_from_masks(video.masks), video.labels)


def test_real_shanghaitech_labels(shared_data):
    labels = {
        k: v for k, (v, _) in read_frame_mask_dir(shared_data / "labels" / "shanghaitech" / "test_frame_mask").items()
    }
    assert len(labels) == 107
    assert sum(len(v) for v in labels.values()) == 40791
    assert sum(int(v.sum()) for v in labels.values()) == 17326


@pytest.mark.slow
def test_real_avenue_labels(shared_data):
    labels = {k: v for k, (v, _) in read_avenue_dir(shared_data / "labels" / "avenue" / "testing_label_mask").items()}
    assert len(labels) == 21 and sorted(labels, key=int) == [str(i) for i in range(1, 22)]
    assert sum(len(v) for v in labels.values()) == 15324
    assert sum(int(v.sum()) for v in labels.values()) == 3712


def test_data_workers_auto_leaves_the_compute_threads_their_cores(monkeypatch):
    """--num_workers -1 (auto): 2 workers, but on CPU runs only as many as cores left by torch's threads."""
    from dataset import workers

    monkeypatch.setattr(workers.os, "sched_getaffinity", lambda pid: set(range(4)), raising=False)
    for threads, expected in [(1, 2), (3, 1), (4, 0), (8, 0)]:
        monkeypatch.setattr(workers.torch, "get_num_threads", lambda t=threads: t)
        assert workers.data_workers(-1, "cpu") == expected
    assert workers.data_workers(3, "cpu") == 3 and workers.data_workers(0, "cpu") == 0  # explicit: as given


def test_16bit_frames_holding_12bit_values_are_not_read_black(tmp_path, capsys):
    """A folder of 16-bit PNGs of 12-bit sensor data reads like the same pictures saved in 8 bits, a folder of
    full-range 16-bit data is scaled by 65535 — also its dark frames (one depth per folder, never per frame) —
    and each folder says once how it was read. A frame above its folder's 12-bit range is one clear error."""
    from dataset.images import TWELVE_BIT_MAX

    rng = np.random.default_rng(0)
    pictures = [rng.integers(0, 256, (24, 32, 3)).astype(np.uint8) for _ in range(3)]
    pictures[0] //= 20  # a dark frame first: its 16-bit maximum is below 4095
    folders = {name: tmp_path / name for name in ("eight", "twelve", "sixteen")}
    for i, picture in enumerate(pictures):
        for name, data in (
            ("eight", picture),
            ("twelve", (picture.astype(np.uint32) * 4095 // 255).astype(np.uint16)),
            ("sixteen", (picture.astype(np.uint32) * 257).astype(np.uint16)),
        ):
            folders[name].mkdir(exist_ok=True)
            cv2.imwrite(str(folders[name] / f"{i:03d}.png"), data)
    assert int(cv2.imread(str(folders["sixteen"] / "000.png"), cv2.IMREAD_UNCHANGED).max()) <= TWELVE_BIT_MAX
    for i in range(3):
        reference = read_frame(folders["eight"] / f"{i:03d}.png", 24, 32).astype(int)
        for name in ("twelve", "sixteen"):
            got = read_frame(folders[name] / f"{i:03d}.png", 24, 32).astype(int)
            assert np.abs(got - reference).max() <= 1, (name, i)
    said = capsys.readouterr().out
    assert said.count("16-bit images") == 2 and "12-bit data" in said and "16-bit data" in said
    cv2.imwrite(str(folders["twelve"] / "003.png"), np.full((24, 32, 3), 60000, np.uint16))
    with pytest.raises(FFPError, match="003.png: values up to 60000.*share one bit depth"):
        read_frame(folders["twelve"] / "003.png", 24, 32)


def test_frames_of_different_sizes_are_resized_consistently(tmp_path):
    """Frames of different sizes in one video are NOT an error: read_frame resizes every frame to the
    config size (height×width), so the video loads and every window/batch has the config shape."""
    from dataset import prepare_dataset
    from dataset.streaming import FolderFrameDataset

    info = fl.write_ped2_layout(tmp_path / "data", n_train=1, n_test=1, n_frames=6)
    rng = np.random.default_rng(0)
    for split, index, size in [("training", 1, (48, 64)), ("training", 3, (10, 14)), ("testing", 2, (240, 360))]:
        path = info["dataset_dir"] / split / "frames" / "01" / f"{index:03d}.jpg"
        cv2.imwrite(str(path), rng.integers(0, 255, (*size, 3), dtype=np.uint8))
    cfg = build_config("ped2", "tiny", {"data_root": str(tmp_path / "data")})
    files = prepare_dataset(cfg)
    for cache in (True, False):
        windows = TrainWindows(files.train, dataclasses.replace(cfg, cache_frames=cache))
        assert all(windows[i].shape == (5, 3, cfg.height, cfg.width) for i in range(len(windows)))
    test_frames = FolderFrameDataset(files.test[0].source, cfg.height, cfg.width)
    assert {tuple(test_frames[i][0].shape) for i in range(len(test_frames))} == {(3, cfg.height, cfg.width)}


@pytest.mark.parametrize("fmt", ["jpg", "png", "bmp", "tif"])
def test_truncated_or_empty_image_names_the_file_and_prints_nothing_else(tmp_path, capfd, fmt):
    """read_frame refuses a truncated (first half) or zero-byte frame of every supported format with an FFPError
    naming the file, and the decoders' own C-level messages (libjpeg 'Premature end of JPEG file', libpng
    'Read Error', OpenCV's TIFF log lines) never reach stderr, so the CLI's one error line stays one line."""
    image = np.random.default_rng(0).integers(0, 255, (60, 90, 3), dtype=np.uint8)
    good = tmp_path / f"good.{fmt}"
    assert cv2.imwrite(str(good), image)
    assert read_frame(good, 32, 48).shape == (32, 48, 3)
    half = tmp_path / f"half.{fmt}"
    half.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    empty = tmp_path / f"empty.{fmt}"
    empty.write_bytes(b"")
    capfd.readouterr()
    for bad in (half, empty, tmp_path / f"missing.{fmt}"):
        with pytest.raises(FFPError) as info:
            read_frame(bad, 32, 48)
        assert str(info.value).startswith(f"cannot read image {bad}: ")
    assert capfd.readouterr().err == ""
