"""Frame numbers true to the source (issue 23): a frame folder's numbers are the numbers in its file names, a video
file's come from its container (AVI index, packet timestamps), one rule for both; labels pair with frames by number.

Small fake data in the real on-disk layouts (tmp_path): frame folders with files missing, a phone-style
variable-frame-rate mp4 written with PyAV, an MJPEG AVI written with OpenCV with part of the file zeroed (with and
without its index), Matroska files that lose packets unseen.
"""

from __future__ import annotations

import json
from pathlib import Path

import fake_layouts as fl
import numpy as np
import pytest
import scipy.io
from helpers import eval_cli, read_scores, run_detect, save_random_checkpoint

from config import FOLDER_FPS, build_config
from dataset import (
    DecodeReport,
    FrameFolder,
    TrainWindows,
    Video,
    VideoFile,
    find_dataset,
    open_source,
    scored_labels,
    video_frame_batches,
)
from dataset.folders import number_files
from errors import FFPError

WITHOUT_60S = [k for k in range(1, 181) if not 60 <= k <= 69]  # files 001..180, 060..069 missing


# ------------------------------------------------------------------------------------------ the folder rule
@pytest.mark.parametrize(
    ("names", "numbers", "base"),
    [
        (["001.jpg", "002.jpg", "003.jpg"], [0, 1, 2], 1),  # Ped2: 1-based files, labels count from frame 0
        (["000.jpg", "001.jpg", "002.jpg"], [0, 1, 2], 0),  # ShanghaiTech, Avenue: 0-based
        (["img_9.png", "img_10.png", "img_12.png"], [8, 9, 11], 1),  # natural order, a gap kept
        (["cam2_0001.jpg", "cam2_0002.jpg"], [0, 1], 1),  # the LAST run of digits is the number
    ],
)
def test_a_folders_frame_numbers_are_the_numbers_in_its_file_names(tmp_path, names, numbers, base):
    files = [tmp_path / n for n in names]
    ordered, found, found_base, note = number_files(files[::-1])
    assert ordered == files and found.tolist() == numbers and found_base == base and note is None


@pytest.mark.parametrize("names", [["a.jpg", "b.jpg", "c.jpg"], ["12-00-01.jpg", "12-01-00.jpg", "12-01-01.jpg"]])
def test_names_without_one_number_give_positions_with_a_note(tmp_path, names):
    """No digits, or names that differ elsewhere too (time stamps): numbered by position, and said so."""
    for name in names:
        fl._imwrite(tmp_path / name, fl.distinct_frame(0))
    folder = FrameFolder(tmp_path)
    assert folder.numbers().tolist() == [0, 1, 2] and "by their position" in folder.report().summary()["numbering"]
    assert folder.report().problems() == [folder.report().summary()["numbering"]]


def test_two_files_with_one_number_are_an_error_naming_both(tmp_path):
    fl.write_frame_folder(tmp_path / "01", [1, 2], pattern="{}.jpg")
    fl.write_frame_folder(tmp_path / "01", [1], pattern="{:03d}.jpg")
    with pytest.raises(
        FFPError, match=r"video folder .*01: (001\.jpg and 1\.jpg|1\.jpg and 001\.jpg) both carry the number 1"
    ):
        open_source(tmp_path / "01")


def test_a_folder_with_missing_files_reports_the_gap_and_batches_carry_its_numbers(tmp_path):
    """060.jpg-069.jpg absent: 170 frames numbered 0..58 and 69..179 (file number − 1), the gap reported; batches
    give those numbers and their times (number / FOLDER_FPS), the folder's report at the end."""
    fl.write_frame_folder(tmp_path / "01", WITHOUT_60S)
    source = open_source(tmp_path / "01")
    expected = [k - 1 for k in WITHOUT_60S]
    assert isinstance(source, FrameFolder) and source.numbers().tolist() == expected
    (problem,) = source.report().problems()
    assert "10 frame files missing in 1 gap" in problem and "60-69" in problem and source.report().gaps() == [(58, 69)]
    batches = video_frame_batches(Video("01", source), build_config("synthetic", "tiny"), 16, workers=0)
    frames = np.concatenate([b.numpy() for b in batches])
    assert list(batches.numbers) == expected and np.allclose(batches.seconds, np.array(expected) / FOLDER_FPS)
    assert batches.report is not None and batches.report.gaps() == [(58, 69)] and len(frames) == 170
    assert abs(float(frames[59].mean()) - float(fl.distinct_frame(70).mean())) < 3  # position 59 is file 070


def test_training_windows_never_span_a_gap(tmp_path):
    fl.write_frame_folder(tmp_path / "01", [k for k in range(20) if k != 10])  # 0-based, frame 10 missing
    windows = TrainWindows([Video("01", open_source(tmp_path / "01"))], build_config("synthetic", "tiny"))
    assert windows.index[:, 1].tolist() == [0, 1, 2, 3, 4, 5] + [10, 11, 12, 13, 14]  # 5-frame windows


def test_validation_and_training_statistics_skip_windows_across_a_gap(tmp_path):
    """One rule for windows across a gap: what training refuses, validation and the PSNR statistics skip too."""
    import torch

    from inference.predict import score_videos, training_psnr_stats
    from model import Generator

    fl.write_frame_folder(tmp_path / "01", [k for k in range(20) if k != 10])  # 0-based, frame 10 missing
    video = Video("01", open_source(tmp_path / "01"))
    cfg = build_config("synthetic", "tiny", {"height": 32, "width": 48, "eval_batch_size": 3})
    generator = Generator(cfg.in_frames, cfg.g_widths)
    psnr, numbers = score_videos(generator, [video], cfg, torch.device("cpu"))
    assert numbers["01"].tolist() == [4, 5, 6, 7, 8, 9, 15, 16, 17, 18, 19]  # 11..14 would see frame 10's hole
    assert len(psnr["01"]) == 11 and np.isfinite(psnr["01"]).all()
    assert training_psnr_stats(generator, [video], cfg, torch.device("cpu"), max_windows=100)["n"] == 11


def test_real_ped2_keeps_todays_numbers_and_labels(shared_data):
    """Ped2's 001.jpg..180.jpg are frames 0..179, and its labels pair with them as they always did."""
    files = find_dataset(shared_data, "ped2")
    for video in files.test:
        assert video.source.numbers().tolist() == list(range(len(video))) and len(video.labels) == len(video)
        assert video.source.report().problems() == []


def test_labels_and_masks_of_a_folder_with_missing_files_are_paired_by_number(tmp_path):
    """UCSD original layout (1-based .tif frames, a mask per frame): with 005.tif and 006.tif gone, the 12 masks
    and labels still belong to frames 0..11 by number, and the scored frames get the labels of their numbers."""
    written = fl.write_ucsd_original_layout(tmp_path, use_m_file=False, mask_ext="png", n_test=1, n_frames=12)
    for k in (5, 6):
        (written["dataset_dir"] / "Test" / "Test001" / f"{k:03d}.tif").unlink()
    (video,) = find_dataset(tmp_path, "ped2").test
    expected = written["labels"]["Test001"]
    assert video.source.numbers().tolist() == [0, 1, 2, 3, 6, 7, 8, 9, 10, 11] and video.frame_span() == 12
    assert len(video.masks) == 12 and video.labels.tolist() == expected.tolist()
    assert scored_labels([video], 4)["Test001"].tolist() == expected[[6, 7, 8, 9, 10, 11]].tolist()
    assert [bool(video.masks.read(n).any()) for n in range(12)] == [bool(v) for v in expected]


def test_a_decode_report_built_without_times_has_them_from_its_numbers():
    report = DecodeReport(Path("x.avi"), np.array([0, 1, 3]), 10.0, None)
    assert report.seconds.tolist() == [0.0, 0.1, 0.3] and report.summary()["duration_s"] == 0.3


# ------------------------------------------------------------------------------------------ eval and detect
def _ped2_with_missing_files(root):
    """Fake Ped2 (0-based 000.jpg…, .mat intervals) whose only test video has 180 frames, files 060-069 removed."""
    written = fl.write_ped2_layout(root, n_train=1, n_test=1, n_frames=180)
    test = written["dataset_dir"] / "testing" / "frames" / "01"
    for k in range(60, 70):
        (test / f"{k:03d}.jpg").unlink()
    return written


def test_eval_pairs_the_labels_of_a_folder_with_missing_files_by_frame_number(tmp_path, capsys):
    """170 frames of a 180-frame labelled video: each scored frame gets the label of its own number (frames after
    the gap are not shifted onto their neighbours' labels), the gap is said once, and the 4 frames after it, whose
    window would span it, are not scored (and said)."""
    written = _ped2_with_missing_files(tmp_path / "data")
    ckpt = save_random_checkpoint(tmp_path / "c.pth")
    assert eval_cli(ckpt, tmp_path / "data", tmp_path / "res", "--dataset", "ped2") == 0
    out = capsys.readouterr().out
    assert out.count("10 frame files missing") == 1 and "labels paired by frame number" in out
    assert "test video 01: 1 break(s) in its frames (missing frame numbers or a hole in time: 59→70" in out
    rows = read_scores(tmp_path / "res" / "ped2_c")
    frames = [int(r["frame"]) for r in rows]
    assert frames == [k for k in range(4, 180) if not 60 <= k <= 73]
    assert [int(r["label"]) for r in rows] == written["labels"]["01"][frames].tolist()


def test_eval_refuses_labels_that_do_not_cover_the_frame_numbers(tmp_path):
    """Labels of 170 frames for a folder whose numbers run to 179: one line naming the video, never a pairing by
    position."""
    written = _ped2_with_missing_files(tmp_path / "data")
    gt = np.empty(1, dtype=object)
    gt[0] = np.zeros((1, 170), dtype=np.uint8)  # one label per frame present, as if paired by position
    scipy.io.savemat(str(written["label_files"][0]), {"gt": gt})
    with pytest.raises(FFPError, match=r"test video 01 .*170 values .*180 frames") as caught:
        find_dataset(tmp_path / "data", "ped2")
    assert "numbered 0-179, 170 present" in str(caught.value) and "\n" not in str(caught.value)


def test_detect_on_a_folder_with_missing_files_writes_its_frame_numbers(tmp_path):
    """detect.py's scores.csv frame column carries the folder's frame numbers (file number − 1 for 001.jpg…); the 4
    frames after the gap, whose window would span it, are not scored."""
    fl.write_frame_folder(tmp_path / "clip", WITHOUT_60S[:80])  # 001..089 without 060..069
    out = run_detect(tmp_path / "clip", save_random_checkpoint(tmp_path / "c.pth"), tmp_path / "det")
    assert [int(r["frame"]) for r in read_scores(out)] == [k - 1 for k in WITHOUT_60S[4:80] if not 70 <= k <= 73]


# ------------------------------------------------------------------------------------------ video files
def test_an_intact_variable_frame_rate_mp4_is_numbered_in_decode_order(tmp_path):
    """30 fps, 15 fps in low light, 30 again: frames 0..179, not damaged, with their true times in seconds."""
    path, times = fl.write_vfr_mp4(tmp_path / "phone.mp4")
    report = VideoFile(path).probe()
    assert report.numbers.tolist() == list(range(180)) and report.problems() == [] and report.uncertain == []
    assert np.allclose(report.seconds, times, atol=1e-6)
    batches = video_frame_batches(Video("phone", VideoFile(path)), build_config("synthetic", "tiny"), 32, workers=0)
    assert sum(len(b) for b in batches) == 180 and list(batches.numbers) == list(range(180))
    assert np.allclose(batches.seconds, times, atol=1e-6)


def test_eval_accepts_the_180_labels_of_a_variable_frame_rate_mp4(tmp_path, capsys):
    fl.write_custom(tmp_path / "data", "cam", train={"a.avi": 8})
    fl.write_vfr_mp4(tmp_path / "data" / "cam" / "testing" / "phone.mp4")
    (tmp_path / "data" / "cam" / "testing" / "labels.csv").write_text("video,start,end\nphone,61,120\n")
    ckpt = save_random_checkpoint(tmp_path / "c.pth")
    assert eval_cli(ckpt, tmp_path / "data", tmp_path / "res", "--dataset", "cam") == 0
    out = capsys.readouterr().out
    assert "micro-AUC:" in out and "missing" not in out and "damaged" not in out
    rows = read_scores(tmp_path / "res" / "cam_c")
    assert [int(r["frame"]) for r in rows] == list(range(4, 180))
    assert [int(r["label"]) for r in rows] == [int(60 <= k < 120) for k in range(4, 180)]


def _zeroed_mjpeg_avi(tmp_path):
    """A 60-frame MJPEG AVI (OpenCV, 10 fps) with 40-55 % of the file zeroed, and the intact original."""
    clean = fl.write_video(tmp_path / "clean.avi", [fl.distinct_frame(j)[..., ::-1] for j in range(60)])
    return fl.zero_bytes(clean, tmp_path / "testing" / "damaged.avi", 0.40, 0.55), clean


def test_frames_after_damage_in_an_avi_keep_their_true_numbers(tmp_path):
    """The AVI demuxer resynchronises past the zeroed bytes and counts on as if nothing were lost; the index says
    where each frame belongs: the frames after the damage keep their numbers (their pictures show it), and the
    missing range is reported, with nothing uncertain."""
    damaged, _ = _zeroed_mjpeg_avi(tmp_path)
    source = VideoFile(damaged)
    report = source.probe()
    ((before, after),) = report.gaps()
    assert 40 < report.n_frames < 60 and report.numbers[-1] == 59 and report.uncertain == []
    assert f"{after - before - 1} frames missing in 1 gap" in report.problems()[0]
    decoded = dict(source.frames(*fl.FAKE_FRAME_SIZE))
    for number in (before - 1, after, 59):  # frame `before` is the one the zeros began in: a damaged picture
        assert abs(float(decoded[number].mean()) - float(fl.distinct_frame(number).mean())) < 2
    assert np.allclose(report.seconds, report.numbers / 10.0)


def test_an_avi_without_its_index_names_the_uncertain_range_and_eval_refuses_it(tmp_path, capsys):
    """Without the index nothing tells how many frames the zeroed bytes held: the frames after them are numbered in
    decode order and reported as uncertain, never passed off as true; eval.py refuses the file in one line."""
    root = tmp_path / "data"
    fl.write_custom(root, "cam", train={"a.avi": 8})
    damaged, _ = _zeroed_mjpeg_avi(root / "cam")
    report = VideoFile(fl.drop_avi_index(damaged)).probe()
    ((first, last),) = report.uncertain
    assert last == report.numbers[-1] and first < last and "frame numbers uncertain" in report.problems()[0]
    assert eval_cli(save_random_checkpoint(tmp_path / "c.pth"), root, tmp_path / "res", "--dataset", "cam") == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "damaged.avi" in err and "uncertain" in err


def test_frames_after_packets_lost_unseen_are_uncertain(tmp_path):
    """Matroska has no table of every packet: the demuxer skips the zeroed bytes and the packets in them without a
    word. The skipped bytes are seen, and as nothing tells how many frames they held (a frame rate that changed
    inside them would be invisible), the numbers after them are reported uncertain: estimates from the timestamps,
    never passed off as true."""
    for name, slow in (("cam.mkv", (0, 0)), ("phone.mkv", (100, 200))):
        clean, _ = fl.write_vfr_mp4(tmp_path / name, n=360, slow=slow)
        report = VideoFile(fl.zero_bytes(clean, tmp_path / f"damaged-{name}", 0.30, 0.40)).probe()
        first, last = report.uncertain[0][0], report.uncertain[-1][1]
        assert 0 < first < 180 and last == report.numbers[-1] and report.n_frames < 360
        assert np.all(report.numbers[report.numbers < first] == np.arange(int(np.sum(report.numbers < first))))
        assert any("frame numbers uncertain" in p for p in report.problems())


# ------------------------------------------------------------------------------------------ breaks in time
def test_repeated_timestamps_in_an_intact_file_are_not_damage(tmp_path, capsys):
    """A recorder that gives two frames one timestamp: every decoder reads all 60 frames in order, so their numbers
    are exact (nothing uncertain) and eval.py pairs the 60 labels with them."""
    ticks = [j if j < 30 else j - 1 for j in range(60)]  # frames 29 and 30 share a timestamp
    fl.write_custom(tmp_path / "data", "cam", train={"a.avi": 8})
    path = fl.write_timed_video(tmp_path / "data" / "cam" / "testing" / "rec.mkv", ticks, 10)
    report = VideoFile(path).probe()
    assert report.numbers.tolist() == list(range(60)) and report.uncertain == [] and report.problems() == []
    (tmp_path / "data" / "cam" / "testing" / "labels.csv").write_text("video,start,end\nrec,41,50\n")
    assert (
        eval_cli(save_random_checkpoint(tmp_path / "c.pth"), tmp_path / "data", tmp_path / "res", "--dataset", "cam")
        == 0
    )
    assert "micro-AUC:" in capsys.readouterr().out
    assert [int(r["frame"]) for r in read_scores(tmp_path / "res" / "cam_c")] == list(range(4, 60))


def test_no_window_spans_a_hole_in_time(tmp_path, capsys):
    """A 10 fps recording that lost 1.1 s (frame 30 comes 1.2 s after frame 29, its numbers consecutive): detect.py
    and eval.py leave frames 30-33 unscored, as their history lies across the hole, and say so."""
    ticks = [j if j < 30 else j + 11 for j in range(60)]
    fl.write_custom(tmp_path / "data", "cam", train={"a.avi": 8})
    path = fl.write_timed_video(tmp_path / "data" / "cam" / "testing" / "rec.mp4", ticks, 10)
    assert VideoFile(path).probe().problems() == []  # an intact file: only its timestamps jump
    ckpt = save_random_checkpoint(tmp_path / "c.pth")
    out = run_detect(path, ckpt, tmp_path / "det")
    expected = [k for k in range(4, 60) if not 30 <= k <= 33]
    assert [int(r["frame"]) for r in read_scores(out)] == expected
    notes = json.loads((out / "summary.json").read_text())["notes"]
    assert any("1 break(s)" in n and "29→30 (1.20 s)" in n for n in notes), notes
    (tmp_path / "data" / "cam" / "testing" / "labels.csv").write_text("video,start,end\nrec,41,50\n")
    capsys.readouterr()
    assert eval_cli(ckpt, tmp_path / "data", tmp_path / "res", "--dataset", "cam") == 0
    assert "29→30 (1.20 s)" in capsys.readouterr().out
    assert [int(r["frame"]) for r in read_scores(tmp_path / "res" / "cam_c")] == expected


def test_a_variable_rate_file_at_half_its_average_rate_keeps_every_window(tmp_path):
    """30 fps with a stretch at 15 fps (low light) is no hole: resampled to the model's 10 fps, every kept frame after
    the first window is scored, and no break is reported."""
    path, _ = fl.write_vfr_mp4(tmp_path / "phone.mp4")
    out = run_detect(path, save_random_checkpoint(tmp_path / "c.pth"), tmp_path / "det")
    summary = json.loads((out / "summary.json").read_text())
    assert not any("break" in n for n in summary["notes"])
    # Consecutive scored frames are at most one kept frame apart (3 source frames at 30 fps, 2 at 15), except across
    # a scene change (these synthetic pictures change wholesale, and a random model may see one).
    frames = [int(r["frame"]) for r in read_scores(out)]
    changes = [range(c["first_frame"], c["last_frame"] + 1) for c in summary["scene_changes"]]
    steps = [(a, b) for a, b in zip(frames, frames[1:]) if not any(a < c.start <= b for c in changes)]
    assert len(frames) > 50 and all(b - a <= 3 for a, b in steps), steps


def test_detect_scores_no_window_across_damage_in_an_avi(tmp_path):
    """The frames after the zeroed bytes keep their numbers; the 4 right after the gap, whose history was lost, are
    not scored."""
    damaged, _ = _zeroed_mjpeg_avi(tmp_path)
    ((before, after),) = VideoFile(damaged).probe().gaps()
    out = run_detect(damaged, save_random_checkpoint(tmp_path / "c.pth"), tmp_path / "det")
    frames = [int(r["frame"]) for r in read_scores(out)]
    assert after + 4 in frames and not set(range(after, after + 4)) & set(frames) and before in frames


def test_detect_says_why_when_breaks_leave_nothing_to_score(tmp_path, capsys):
    """Frames saved every other number (a stride): every step is a break, no window is whole: one error line that
    names the breaks."""
    import detect
    from cli import run_cli

    fl.write_frame_folder(tmp_path / "clip", range(1, 40, 2))
    argv = ["--video", str(tmp_path / "clip"), "--trained_model", str(save_random_checkpoint(tmp_path / "c.pth"))]
    assert run_cli(detect.main, [*argv, "--out_dir", str(tmp_path / "out"), "--device", "cpu"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "no frame could be scored" in line and "19 break(s)" in line
