"""Real footage in, as people have it (issue 11): video files everywhere, the official Avenue and ShanghaiTech
downloads, your own camera, the frame cache, damaged files, and docs/detection.md's walk-through on a recording.

Fake datasets are written in each official layout with OpenCV (videos made from real UCSD Ped2 frames when
../shared is present, gradient frames otherwise); real footage (vtest.avi, tree.avi) comes from ../shared.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import fake_layouts as fl
import numpy as np
import pytest
import torch
from helpers import (
    SHARED_DATA,
    eval_cli,
    read_scores,
    real_frames,
    run_detect,
    save_random_checkpoint,
    tiny_args,
    train_cli,
)

from config import build_config
from dataset import TrainWindows, VideoFile, find_dataset, open_source, training_videos, video_frame_batches
from errors import FFPError


def snapshot(folder: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*")}


# ------------------------------------------------------------------------------------------ decoding
def test_frames_are_counted_by_decoding_not_by_the_header(shared_data):
    """tree.avi's header declares 444 frames; 68 decode. Its index lists 444 chunks of which 68 hold pictures (a new
    picture every ~6 ticks of 15 fps): an intact file of variable frame rate, numbered 0..67 in decode order with
    its true times in seconds, and not reported as damage."""
    source = open_source(shared_data / "real_video" / "tree.avi")
    report = source.probe()
    assert isinstance(source, VideoFile) and len(source) == 68 and report.header_frames == 444
    assert report.numbers.tolist() == list(range(68)) and report.listed == 68
    assert report.seconds[0] == 0 and np.all(np.diff(report.seconds) > 0) and 29 < report.seconds[-1] < 30
    assert report.problems() == []


def test_vtest_decodes_whole(shared_data):
    report = open_source(shared_data / "real_video" / "vtest.avi").probe()
    assert report.n_frames == 795 and report.numbers.tolist() == list(range(795)) and report.fps == 10
    assert report.problems() == []


def _damaged_middle(src: Path, dst: Path) -> Path:
    data = bytearray(src.read_bytes())
    middle = len(data) // 2
    data[middle : middle + len(data) // 6] = bytes(len(data) // 6)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(bytes(data))
    return dst


def test_a_damaged_middle_keeps_true_frame_numbers_and_is_reported(clean_mp4, tmp_path):
    """Zeroed bytes in the middle of an mp4: the decoder skips the damaged frames; the frames after the gap keep
    their numbers (their content matches the original frame of that number) and the gap is reported."""
    path, originals = clean_mp4
    damaged = VideoFile(_damaged_middle(path, tmp_path / "damaged.mp4"))
    report = damaged.probe()
    gaps = report.gaps()
    assert 0 < report.n_frames < 120 and len(gaps) == 1 and "missing in 1 gap" in report.problems()[0]
    decoded = dict(damaged.frames(*fl.FAKE_FRAME_SIZE))
    after = [n for n in decoded if n > gaps[0][0]]
    assert after and after[-1] == 119
    for number in after[-5:]:
        expected = cv2.cvtColor(originals[number], cv2.COLOR_BGR2RGB).astype(float).mean()
        assert abs(decoded[number].astype(float).mean() - expected) < 4


def test_a_cut_file_reports_its_early_end(shared_data, tmp_path):
    """An .avi cut in half decodes its first half: the missing end is reported against the header's count."""
    data = (shared_data / "real_video" / "vtest.avi").read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: len(data) // 2])
    report = VideoFile(tmp_path / "cut.avi").probe()
    assert 300 < report.n_frames < 500 and report.missing_tail() == 795 - report.numbers[-1] - 1
    assert "decoding stopped after frame" in report.problems()[0] and "795" in report.problems()[0]


# ------------------------------------------------------------------------------------------ official layouts
@pytest.mark.parametrize("ground_truth_demo", [True, False])
def test_official_avenue_trains_and_evaluates(tmp_path, ground_truth_demo, capsys):
    """avenue/training_videos/*.avi, testing_videos/*.avi, [ground_truth_demo/]testing_label_mask/: train.py and
    eval.py work as the download unpacks; labels and frame counts match what was written."""
    written = fl.write_official_avenue(tmp_path / "data", real=real_frames(), ground_truth_demo=ground_truth_demo)
    files = find_dataset(tmp_path / "data", "avenue")
    assert files.layout == "avenue" and all(isinstance(v.source, VideoFile) for v in files.train + files.test)
    assert {v.name: len(v) for v in files.test} == written["test_videos"]
    for video in files.test:
        np.testing.assert_array_equal(video.labels, written["labels"][video.name])
    assert train_cli(tiny_args(tmp_path / "data", tmp_path, 2, dataset="avenue", val_interval=100, cache=True)) == 0
    assert eval_cli(tmp_path / "w" / "avenue_latest.pth", tmp_path / "data", tmp_path / "res") == 0
    assert "micro-AUC:" in capsys.readouterr().out


def test_official_shanghaitech_uses_its_pixel_masks(tmp_path, capsys):
    """training/videos/*.avi + testing/frames/ + test_frame_mask/ + test_pixel_mask/: the mask folder is never a
    video, and pixel AUROC is computed from test_pixel_mask/*.npy."""
    written = fl.write_official_shanghaitech(tmp_path / "data", real=real_frames())
    files = find_dataset(tmp_path / "data", "shanghaitech")
    assert files.layout == "shanghaitech" and [v.name for v in files.test] == list(written["test_videos"])
    assert all(v.masks is not None and len(v.masks) == len(v) for v in files.test)
    assert (
        train_cli(tiny_args(tmp_path / "data", tmp_path, 2, dataset="shanghaitech", val_interval=100, cache=True)) == 0
    )
    assert eval_cli(tmp_path / "w" / "shanghaitech_latest.pth", tmp_path / "data", tmp_path / "res") == 0
    metrics = json.loads((tmp_path / "res" / "shanghaitech_shanghaitech_latest" / "metrics.json").read_text())
    assert 0 <= metrics["pixel_auroc"] <= 1 and "pixel_auroc_skipped" not in metrics


def test_the_flat_layout_never_takes_mask_folders_for_videos(tmp_path):
    written = fl.write_shanghaitech_layout(tmp_path / "data")
    masks = written["dataset_dir"] / "testing" / "test_pixel_mask"
    masks.mkdir()
    np.save(masks / "01_0014.npy", np.zeros((8, 24, 36), np.uint8))
    assert [v.name for v in find_dataset(tmp_path / "data", "shanghaitech").test] == list(written["test_videos"])


# ------------------------------------------------------------------------------------------ your own data
def test_own_camera_without_labels_trains_and_reports_without_auc(tmp_path, capsys):
    """<root>/mycam/training/{monday.avi, tuesday.mp4}, testing/ with one unlabelled file: training runs (no
    validation, no 'best'), and eval.py writes scores, curves and the page, and says AUC needs labels."""
    fl.write_custom(tmp_path / "data", "mycam", test={"wednesday.avi": 14}, real=real_frames())
    assert train_cli(tiny_args(tmp_path / "data", tmp_path, 2, dataset="mycam", val_interval=100, cache=True)) == 0
    out = capsys.readouterr().out
    assert "validation AUC skipped" in out and "no validation ran, so no 'best' checkpoint" in out
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["mycam_latest.pth"]
    assert eval_cli(tmp_path / "w" / "mycam_latest.pth", tmp_path / "data", tmp_path / "res") == 0
    out = capsys.readouterr().out
    assert "no AUC: AUC needs frame labels" in out
    report = tmp_path / "res" / "mycam_mycam_latest"
    rows = (report / "scores.csv").read_text().splitlines()
    assert rows[0] == "video,frame,psnr,score,label" and len(rows) == 1 + 14 - 4 and rows[1].startswith("wednesday,4,")
    assert (report / "curves" / "wednesday.png").is_file() and not (report / "roc.png").exists()
    assert "AUC needs frame labels" in (report / "index.html").read_text()


def test_own_labels_csv_gives_an_auc(tmp_path, capsys):
    fl.write_custom(tmp_path / "data", "mycam", test={"wednesday.avi": 14})
    (tmp_path / "data" / "mycam" / "testing" / "labels.csv").write_text("video,start,end\nwednesday,8,11\n")
    files = find_dataset(tmp_path / "data", "mycam")
    assert files.test[0].labels.tolist() == [0] * 7 + [1] * 4 + [0] * 3
    assert train_cli(tiny_args(tmp_path / "data", tmp_path, 2, dataset="mycam", val_interval=100, cache=True)) == 0
    assert eval_cli(tmp_path / "w" / "mycam_latest.pth", tmp_path / "data", tmp_path / "res") == 0
    assert "micro-AUC:" in capsys.readouterr().out


def test_eval_resamples_faster_test_videos_to_the_training_rate(tmp_path, capsys):
    """Training footage at 10 fps (the checkpoint records it), a test video at 25 fps with labels: eval.py keeps
    2 in 5 of its frames by their timestamps, says so once, and pairs each kept frame with its own label."""
    dataset = tmp_path / "data" / "mycam"
    fl.write_video(dataset / "training" / "monday.avi", fl.video_frames(12, 0, None), fps=10.0)
    fl.write_video(dataset / "testing" / "fast.avi", fl.video_frames(50, 20, None), fps=25.0)
    (dataset / "testing" / "labels.csv").write_text("video,start,end\nfast,20,29\n")
    assert train_cli(tiny_args(tmp_path / "data", tmp_path, 2, dataset="mycam", val_interval=100, cache=True)) == 0
    assert torch.load(tmp_path / "w" / "mycam_latest.pth", weights_only=True)["fps"] == 10.0
    capsys.readouterr()
    assert eval_cli(tmp_path / "w" / "mycam_latest.pth", tmp_path / "data", tmp_path / "res") == 0
    out = capsys.readouterr().out
    assert out.count("1 test video(s) runs at 25 fps and the model was trained on 10 fps footage") == 1
    rows = [r.split(",") for r in (tmp_path / "res" / "mycam_mycam_latest" / "scores.csv").read_text().splitlines()]
    frames, labels = [int(r[1]) for r in rows[1:]], [int(r[4]) for r in rows[1:]]
    assert 15 <= len(frames) <= 17 and set(np.diff(frames)) <= {2, 3}
    assert labels == [int(19 <= f <= 28) for f in frames]  # labels.csv counts frames from 1


def test_train_until_uses_the_normal_part_only(tmp_path):
    """--train_until 9 (frames) or '0.9s' (10 fps): every training video is cut to frames numbered < 9."""
    fl.write_custom(tmp_path / "data", "mycam", train={"a.avi": 20, "b.avi": 12})
    files = find_dataset(tmp_path / "data", "mycam")
    for until in ("9", "0.9s"):
        cfg = build_config("mycam", "tiny", {"data_root": str(tmp_path / "data"), "train_until": until})
        windows = TrainWindows(training_videos(files, cfg), cfg)
        assert windows.store.lengths == [9, 9] and len(windows) == 2 * (9 - 4)


# ------------------------------------------------------------------------------------------ frame cache
def test_video_files_beyond_the_ram_budget_are_extracted_once_outside_the_data(tmp_path):
    """cache_max_gb 0: video files are extracted into --cache_dir (never under --data_root), reused by the next
    run, and re-extracted when the file changes (the stale extraction is removed)."""
    fl.write_custom(tmp_path / "data", "mycam", train={"a.avi": 12})
    before = snapshot(tmp_path / "data")
    cfg = build_config(
        "mycam",
        "tiny",
        {"data_root": str(tmp_path / "data"), "cache_max_gb": 0.0, "cache_dir": str(tmp_path / "cache")},
    )
    files = find_dataset(tmp_path / "data", "mycam")
    first = TrainWindows(files.train, cfg)
    extracted = list((tmp_path / "cache" / "frames").iterdir())
    assert len(extracted) == 1 and len(list(extracted[0].glob("*.jpg"))) == 12 and not first.store.in_ram
    stamp = snapshot(tmp_path / "cache")
    second = TrainWindows(files.train, cfg)
    assert snapshot(tmp_path / "cache") == stamp and torch.equal(first[3], second[3])
    fl.write_custom(tmp_path / "data", "mycam", train={"a.avi": 14})  # the recording was replaced
    third = TrainWindows(find_dataset(tmp_path / "data", "mycam").train, cfg)
    now = list((tmp_path / "cache" / "frames").iterdir())
    assert len(third) == 14 - 4 and len(now) == 1 and now[0] != extracted[0]
    assert set(snapshot(tmp_path / "data")) == set(before)


def test_extractions_of_the_current_file_at_other_sizes_are_kept_for_other_runs(tmp_path):
    """Two runs sharing --cache_dir at different sizes (or --train_until) must not delete each other's frames;
    only extractions of an older version of the file are stale."""
    fl.write_custom(tmp_path / "data", "mycam", train={"a.avi": 12})
    files = find_dataset(tmp_path / "data", "mycam")
    common = {"data_root": str(tmp_path / "data"), "cache_max_gb": 0.0, "cache_dir": str(tmp_path / "cache")}
    small = TrainWindows(files.train, build_config("mycam", "tiny", common))
    larger = TrainWindows(files.train, build_config("mycam", "tiny", {**common, "height": 64, "width": 96}))
    assert len(list((tmp_path / "cache" / "frames").iterdir())) == 2
    assert small[0].shape[-2:] == (32, 48) and larger[0].shape[-2:] == (64, 96)
    assert torch.equal(small[5], TrainWindows(files.train, build_config("mycam", "tiny", common))[5])


def test_decoder_recoveries_without_a_timestamp_gap_are_reported_as_damage():
    """Damaged packets the decoder failed on and recovered from, with no frame number lost (every number placed by
    the container): reported as damage, without a gap or an uncertain range."""
    from dataset import DecodeReport

    whole = DecodeReport(Path("x.avi"), np.arange(50), None, None, retries=0)
    damaged = DecodeReport(Path("x.avi"), np.arange(50), None, None, retries=3)
    assert whole.problems() == []
    assert len(damaged.problems()) == 1 and "failed 3 time(s)" in damaged.problems()[0]
    assert damaged.summary()["decode_retries"] == 3


def test_other_matlab_files_are_not_taken_for_ucsd_labels(tmp_path):
    """Only UCSD*.m is the official label script: someone's own analysis.m next to labels.csv is ignored."""
    fl.write_custom(tmp_path, "mycam", train={"a.avi": 12}, test={"b.avi": 12})
    (tmp_path / "mycam" / "analysis.m").write_text("x = 1;\n")
    (tmp_path / "mycam" / "testing" / "labels.csv").write_text("video,start,end\nb,3,5\n")
    files = find_dataset(tmp_path, "mycam")
    assert files.test[0].labels.tolist() == [0, 0, 1, 1, 1] + [0] * 7


def test_video_and_folder_give_the_same_windows(tmp_path):
    """A lossless video of a frame folder trains on the same pixels as the folder (RAM cache and batches)."""
    written = fl.write_ped2_layout(tmp_path / "data", n_train=1, n_test=1)
    folder = written["dataset_dir"] / "training" / "frames" / "01"
    frames = [cv2.imread(str(p)) for p in sorted(folder.glob("*.jpg"))]
    video = tmp_path / "lossless.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"FFV1"), 10.0, frames[0].shape[1::-1])
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()
    cfg = build_config("ped2", "tiny", {"data_root": str(tmp_path / "data")})
    from dataset import Video

    a = TrainWindows([Video("01", open_source(folder))], cfg)
    b = TrainWindows([Video("01", open_source(video))], cfg)
    assert len(a) == len(b) and all(torch.equal(a[i], b[i]) for i in range(len(a)))
    batches = [torch.cat(list(video_frame_batches(v, cfg, 3, workers=0))) for v in a.videos + b.videos]
    assert torch.equal(*batches)


# ------------------------------------------------------------------------------------------ bad input
def test_bad_video_files_are_one_line_errors(tmp_path):
    root = tmp_path / "data"
    fl.write_custom(root, "cam", train={"ok.avi": 8})
    (root / "cam" / "training" / "junk.mp4").write_bytes(b"this is not a video")
    with pytest.raises(FFPError, match=r"cannot open video file .*junk\.mp4"):
        TrainWindows(find_dataset(root, "cam").train, build_config("cam", "tiny", {"data_root": str(root)}))
    (root / "cam" / "training" / "junk.mp4").write_bytes(b"")
    with pytest.raises(FFPError, match=r"junk\.mp4: the file is empty"):
        TrainWindows(find_dataset(root, "cam").train, build_config("cam", "tiny", {"data_root": str(root)}))
    (root / "cam" / "training" / "junk.mp4").unlink()
    fl.write_video(root / "cam" / "training" / "short.avi", fl.video_frames(3))
    with pytest.raises(FFPError, match=r"video file .*short\.avi has 3 frames, shorter than the 5-frame window"):
        TrainWindows(find_dataset(root, "cam").train, build_config("cam", "tiny", {"data_root": str(root)}))


def test_a_split_mixing_files_and_folders_is_refused(tmp_path):
    fl.write_custom(tmp_path, "cam", train={"a.avi": 8})
    (tmp_path / "cam" / "training" / "01").mkdir()
    cv2.imwrite(str(tmp_path / "cam" / "training" / "01" / "000.jpg"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(
        FFPError, match=r"split folder .*training mixes video files \(a\.avi\) and frame folders \(01\)"
    ):
        find_dataset(tmp_path, "cam")


def test_eval_and_detect_score_a_damaged_test_video_by_its_true_numbers(clean_mp4, tmp_path, capsys):
    """A test video file with a gap (its numbers known from the container): eval.py scores the frames that decode
    and whose window spans no gap, with their true numbers in scores.csv, and says once what is missing; detect.py
    scores them too, and says what is missing in its output and summary.json."""
    fl.write_custom(tmp_path / "data", "cam", train={"a.avi": 8})
    damaged = _damaged_middle(clean_mp4[0], tmp_path / "data" / "cam" / "testing" / "damaged.mp4")
    ckpt = save_random_checkpoint(tmp_path / "c.pth")
    assert eval_cli(ckpt, tmp_path / "data", tmp_path / "res", "--dataset", "cam") == 0
    out = capsys.readouterr().out
    assert out.count("missing in 1 gap") == 1 and "labels paired by frame number" in out
    (a, b), *_ = VideoFile(damaged).report().gaps()
    frames = [int(r["frame"]) for r in read_scores(tmp_path / "res" / "cam_c")]
    # the 4 frames after the gap are not scored either: their window's history is in it
    assert frames[-1] == 119 and a in frames and b + 4 in frames and not set(range(a + 1, b + 4)) & set(frames)
    out = run_detect(damaged, ckpt, tmp_path / "det")
    numbers = [int(r["frame"]) for r in read_scores(out)]
    summary = json.loads((out / "summary.json").read_text())
    assert numbers[-1] == 119 and len(numbers) < 116 and summary["decoding"]["gaps"]
    assert "warning:" in capsys.readouterr().out and any("gap" in n for n in summary["notes"])


def test_pixel_masks_as_video_files(tmp_path):
    """UCSD-style masks stored as one video per test video (Test001_gt.avi): read like the mask images (lossless
    FFV1 here), never taken for a test video, and their labels equal the images' labels."""
    written = fl.write_ucsd_original_layout(tmp_path, use_m_file=False, mask_ext="png")
    test_dir = written["dataset_dir"] / "Test"
    for gt_dir in sorted(test_dir.glob("Test*_gt")):
        masks = [
            cv2.imread(str(p))
            for p in sorted(gt_dir.iterdir(), key=lambda p: int("".join(filter(str.isdigit, p.stem))))
        ]
        writer = cv2.VideoWriter(
            str(test_dir / f"{gt_dir.name}.avi"), cv2.VideoWriter_fourcc(*"FFV1"), 10.0, masks[0].shape[1::-1]
        )
        for mask in masks:
            writer.write(mask)
        writer.release()
        for path in gt_dir.iterdir():
            path.unlink()
        gt_dir.rmdir()
    files = find_dataset(tmp_path, "ped2")
    assert [v.name for v in files.test] == list(written["test_videos"])
    for video in files.test:
        assert len(video.masks) == len(video)
        np.testing.assert_array_equal(video.labels, written["labels"][video.name])


def test_walkthrough_flow_on_real_footage(tmp_path, capsys):
    """docs/detection.md "A walk-through on your own footage" in small: train on the first part of one recording
    (vtest.avi when ../shared has it, else a generated clip), then score the rest of the same file with detect.py
    --start in stream mode."""
    real = SHARED_DATA / "real_video" / "vtest.avi"
    clip = real if real.is_file() else fl.write_video(tmp_path / "vtest.avi", fl.video_frames(80))
    (tmp_path / "data" / "campus" / "training").mkdir(parents=True)
    (tmp_path / "data" / "campus" / "training" / "vtest.avi").symlink_to(clip)
    assert (
        train_cli(
            tiny_args(
                tmp_path / "data", tmp_path, 4, "--train_until", "4s", dataset="campus", val_interval=100, cache=True
            )
        )
        == 0
    )
    assert "validation AUC skipped" in capsys.readouterr().out
    out = run_detect(
        clip,
        tmp_path / "w" / "campus_latest.pth",
        tmp_path / "det",
        "--start",
        "4s",
        "--mode",
        "stream",
        "--max_frames",
        "60",
        "--save_video",
    )
    frames = [int(r["frame"]) for r in read_scores(out)]
    assert frames == list(range(40, 60)) and (out / "heatmap.mp4").stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["start"] == 40 and "stored in campus_latest.pth" in summary["score"]
