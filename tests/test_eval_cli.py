"""eval.py end to end on the synthetic dataset (6 test videos of 120 frames, pixel masks) with a randomly
initialised very small generator saved as a checkpoint: seconds per run, no training."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path
from urllib.parse import unquote

import cv2
import fake_layouts as fl
import numpy as np
import pytest
import torch
from helpers import LATEST, ROOT, TINY, eval_cli, page_links, save_random_checkpoint, tiny_args, train_cli

import eval as eval_script
import evaluation.report as report
import inference.predict as predict
from cli import run_cli
from dataset import find_dataset
from evaluation.video import PANEL_MIN_H, STRIP_H
from inference.predict import TorchPredictor
from inference.runtime import predict_frames
from model import Generator

N_TEST_VIDEOS, N_FRAMES = 6, 120  # the default synthetic dataset (prepare_dataset insists on it)


def run_eval(ckpt: Path, root: Path, out: Path, *extra: str) -> int:
    return eval_script.main(
        ["--trained_model", str(ckpt), "--data_root", str(root), "--out_dir", str(out), "--device", "cpu", *extra]
    )


@pytest.fixture(scope="module")
def video_run(synthetic_root, tmp_path_factory):
    """One eval with --save_video and pixel AUROC; returns (result folder, checkpoint, out root)."""
    tmp = tmp_path_factory.mktemp("eval")
    ckpt = save_random_checkpoint(tmp / "synthetic_latest.pth")
    assert run_eval(ckpt, synthetic_root, tmp / "results", "--save_video") == 0
    return tmp / "results" / "synthetic_synthetic_latest", ckpt, tmp / "results"


def test_scores_csv_rows_and_frames(video_run):
    out, _, _ = video_run
    with open(out / "scores.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["video", "frame", "psnr", "score", "label"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(rows) - 1 == metrics["n_frames"] == N_TEST_VIDEOS * (N_FRAMES - 4)
    by_video = {}
    for video, frame, *_ in rows[1:]:
        by_video.setdefault(video, []).append(int(frame))
    assert len(by_video) == N_TEST_VIDEOS
    assert all(frames == list(range(4, N_FRAMES)) for frames in by_video.values())


def test_metrics_json_keys_types_ranges(video_run):
    out, _, _ = video_run
    m = json.loads((out / "metrics.json").read_text())
    for key in ("micro_auc", "macro_auc", "eer", "ap", "raw_psnr_micro_auc", "pixel_auroc"):
        assert isinstance(m[key], float) and 0.0 <= m[key] <= 1.0, key
    assert isinstance(m["n_frames"], int) and m["step"] == 0
    assert m["checkpoint"] == "synthetic_latest.pth" and m["selected_with_test_labels"] is False
    assert m["dropped_frames"] == 4 and m["smooth_sigma"] == 0.0 and m["config"]["height"] == 32
    protocol = m["pixel_auroc_protocol"]
    assert "nearest" in protocol and "frame index >= 4" in protocol and "subsample" in protocol
    # All scored frames' 32×48 pixels fit in the 2M sample: nothing is dropped here.
    assert f"{m['n_frames'] * 32 * 48:,} of {m['n_frames'] * 32 * 48:,} pixels" in protocol
    run = m["run"]  # the page's header, kept with the numbers
    assert run["dataset"] == "synthetic" and "(step 0, not selected with test labels)" in run["checkpoint"]
    assert run["torch"] == torch.__version__ and run["device"].startswith("cpu") and run["git commit"]


def test_figures_and_index_links_exist(video_run):
    out, _, _ = video_run
    assert (out / "roc.png").stat().st_size > 0
    assert len(list((out / "curves").glob("*.png"))) == N_TEST_VIDEOS
    links = page_links(out / "index.html")
    assert "roc.png" in links and sum(link.endswith(".mp4") for link in links) >= N_TEST_VIDEOS
    for link in links:
        assert (out / unquote(link)).is_file(), link


def test_heatmap_videos_frames_and_width(video_run):
    out, _, _ = video_run
    videos = sorted((out / "videos").glob("*.mp4"))
    assert len(videos) == N_TEST_VIDEOS
    scale = math.ceil(PANEL_MIN_H / TINY.height)
    for path in videos:
        cap = cv2.VideoCapture(str(path))
        assert cap.isOpened(), path
        n, frame = 0, None
        while True:
            ok, img = cap.read()
            if not ok:
                break
            n, frame = n + 1, img
        cap.release()
        assert n == N_FRAMES - 4, path
        assert frame.shape[1] == 3 * TINY.width * scale  # frame | heatmap | overlay
        assert frame.shape[0] == TINY.height * scale + STRIP_H  # panels + score strip


def test_second_run_is_numbered_then_overwrite_reuses(video_run, synthetic_root):
    out, ckpt, results = video_run
    assert run_eval(ckpt, synthetic_root, results, "--no_pixel_auroc") == 0
    second = results / "synthetic_synthetic_latest_2"
    m2 = json.loads((second / "metrics.json").read_text())
    assert "pixel_auroc" not in m2 and m2["pixel_auroc_skipped"] == "--no_pixel_auroc"
    assert run_eval(ckpt, synthetic_root, results, "--no_pixel_auroc", "--overwrite") == 0
    assert not (results / "synthetic_synthetic_latest_3").exists()
    replaced = json.loads((out / "metrics.json").read_text())
    assert "pixel_auroc" not in replaced  # the first folder was replaced by the new run
    assert not (out / "videos").exists()  # ... entirely, not merged into
    assert not [p for p in results.iterdir() if p.name.startswith(".")], "temp folders left behind"


@pytest.mark.parametrize(
    "module, target, flags",
    [
        (report, "_plot_roc", ()),  # after scores.csv and metrics.json
        (eval_script, "write_heatmap_video", ("--save_video",)),  # during the per-video pass
    ],
)
def test_failure_midway_leaves_no_result_folder(synthetic_root, tmp_path, monkeypatch, module, target, flags):
    """A crash after some files were written leaves neither a result folder nor temp files (nor the --out_dir the
    run created for them)."""
    ckpt = save_random_checkpoint(tmp_path / "synthetic_latest.pth")

    def boom(*args, **kwargs):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(module, target, boom)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_eval(ckpt, synthetic_root, tmp_path / "results", *flags)
    assert not (tmp_path / "results").exists()


def test_plain_run_computes_no_error_maps(synthetic_root, tmp_path, monkeypatch, capsys):
    """Without --save_video and pixel AUROC, error maps are computed only for the report's few example frames
    (one window each), never for the test set (metric runs stay fast)."""
    real, sizes = predict.WindowPrediction.error_maps, []

    def counted(self):
        sizes.append(len(self.psnr))
        return real(self)

    monkeypatch.setattr(predict.WindowPrediction, "error_maps", counted)
    ckpt = save_random_checkpoint(tmp_path / "synthetic_best.pth", selected_with_test_labels=True)
    assert run_eval(ckpt, synthetic_root, tmp_path / "r", "--no_pixel_auroc", "--smooth_sigma", "2") == 0
    printed = capsys.readouterr().out
    auc_lines = [  # the metric lines (an untrained model may also get the note on labels that look inverted)
        line for line in printed.splitlines() if "AUC" in line and "pixel" not in line and not line.startswith("note:")
    ]
    assert auc_lines and all(
        "ckpt=synthetic_best.pth" in line
        and "selected_with_test_labels=YES" in line
        and "sigma=2" in line
        and "dropped=4" in line
        for line in auc_lines
    )
    m = json.loads((tmp_path / "r" / "synthetic_synthetic_best" / "metrics.json").read_text())
    assert m["selected_with_test_labels"] is True and m["smooth_sigma"] == 2.0
    assert sizes == [1] * 2 * report.WORST_PER_KIND


def test_pixel_auroc_sees_every_scored_frame_and_its_mask(synthetic_root):
    """predict_video feeds each scored frame's error map with that frame's mask (frame index >= 4)."""
    files = find_dataset(synthetic_root, "synthetic")
    video = files.test[0]
    torch.manual_seed(0)
    g = Generator(TINY.in_frames, TINY.g_widths).eval()
    seen = []

    class Recorder:
        def add(self, errors, masks):
            seen.append((errors.shape, masks.copy()))

    predictor = TorchPredictor(g, TINY.in_frames, torch.device("cpu"))
    psnr, numbers, kept, _ = eval_script.predict_video(predictor, video, TINY, Recorder(), keep=False)
    assert kept is None and len(psnr) == len(video) - 4 and numbers.tolist() == list(range(4, len(video)))
    masks = np.concatenate([m for _, m in seen])
    assert masks.shape == (len(video) - 4, TINY.height, TINY.width) and masks.dtype == bool
    expected = [video.masks.read(i, (TINY.height, TINY.width)) for i in range(4, len(video))]
    assert np.array_equal(masks, np.stack(expected))
    assert masks.any() and not masks.all()


def test_repredicted_examples_match_the_scored_frames(synthetic_root):
    """The report's example images are the same predictions that were scored: the PSNR of a re-predicted frame's
    error map equals the streamed PSNR of that frame."""
    files = find_dataset(synthetic_root, "synthetic")
    video = files.test[1]
    torch.manual_seed(0)
    g = Generator(TINY.in_frames, TINY.g_widths).eval()
    predictor = TorchPredictor(g, TINY.in_frames, torch.device("cpu"))
    psnr, numbers, _, _ = eval_script.predict_video(predictor, video, TINY, None, keep=False)
    chosen = [int(numbers[0]), int(numbers[len(numbers) // 2]), int(numbers[-1])]
    found = predict_frames(predictor, video, chosen, TINY)
    assert sorted(found) == chosen
    for number in chosen:
        images = found[number]
        assert images["frame"].shape == images["prediction"].shape == (TINY.height, TINY.width, 3)
        again = 10 * np.log10(1.0 / images["error"].astype(np.float64).mean())
        assert again == pytest.approx(float(psnr[list(numbers).index(number)]), abs=1e-3)


def test_eval_report_shows_worst_frames_and_the_run(video_run):
    out, _, _ = video_run
    page = (out / "index.html").read_text()
    for image in ("worst_false_alarms.png", "worst_misses.png"):
        assert (out / image).stat().st_size > 0 and image in page
    for item in ("git commit", "torch", "device", "evaluation time", "training time"):
        assert f"<td>{item}</td>" in page


def test_read_mask_nearest_keeps_binary(tmp_path):
    mask = np.zeros((240, 360), np.uint8)
    mask[100:140, 200:260] = 255
    cv2.imwrite(str(tmp_path / "m.png"), mask)
    from dataset import MaskImages

    small = MaskImages([tmp_path / "m.png"], tmp_path).read(0, (64, 96))
    assert small.shape == (64, 96) and small.dtype == bool
    assert 0.5 * (40 * 60 / (240 * 360)) < small.mean() < 1.5 * (40 * 60 / (240 * 360))


def test_bad_inputs_are_one_line_errors(synthetic_root, tmp_path, capsys):
    ckpt = save_random_checkpoint(tmp_path / "c.pth")
    assert run_cli(eval_script.main, ["--trained_model", str(tmp_path / "missing.pth")]) == 1
    assert (
        run_cli(
            eval_script.main, ["--trained_model", str(ckpt), "--data_root", str(synthetic_root), "--smooth_sigma", "-1"]
        )
        == 1
    )
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and "missing.pth" in errors[0] and "--smooth_sigma" in errors[1]


def test_evaluation_never_overwrites_silently(data_root, tmp_path, capsys):
    """A second evaluation of the same checkpoint goes to a numbered sibling and leaves the first byte-identical;
    only --overwrite replaces the folder (no new sibling, the others untouched)."""
    assert train_cli(tiny_args(data_root, tmp_path / "run", 6, "--save_interval", "3", "--lr_drop_steps", "4")) == 0
    ckpt = tmp_path / "run" / "w" / LATEST
    results = tmp_path / "results"
    argv = [
        "--trained_model",
        str(ckpt),
        "--data_root",
        str(data_root),
        "--out_dir",
        str(results),
        "--num_workers",
        "0",
        "--device",
        "cpu",
    ]

    def snapshot(folder: Path) -> dict:
        return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}

    assert eval_script.main(argv) == 0
    first = results / "ped2_ped2_latest"
    (first / "my_notes.txt").write_text("kept unless --overwrite")
    before = snapshot(first)
    assert eval_script.main(argv) == 0
    second = results / "ped2_ped2_latest_2"
    assert snapshot(first) == before and (second / "metrics.json").is_file()
    second_files = snapshot(second)
    assert eval_script.main([*argv, "--overwrite"]) == 0
    assert sorted(p.name for p in results.iterdir() if not p.name.startswith(".")) == [
        "ped2_ped2_latest",
        "ped2_ped2_latest_2",
    ]
    assert not (first / "my_notes.txt").exists() and (first / "metrics.json").is_file()
    assert snapshot(second) == second_files
    assert not [p for p in results.iterdir() if p.name.startswith(".")], "temp folders left behind"


def test_eval_notes_videos_without_spread(tmp_path, capsys):
    info = fl.write_ped2_layout(tmp_path / "data", n_test=2, n_frames=12)
    video = info["dataset_dir"] / "testing" / "frames" / "01"
    for path in video.iterdir():
        cv2.imwrite(str(path), np.full((24, 36, 3), 90, np.uint8))
    ckpt = save_random_checkpoint(tmp_path / "c.pth")
    assert eval_cli(ckpt, tmp_path / "data", tmp_path / "res", "--dataset", "ped2", "--no_pixel_auroc") == 0
    assert "note: 1 video(s) have a PSNR span below 0.1 dB" in capsys.readouterr().out
    report = tmp_path / "res" / "ped2_c"
    assert "01" in (report / "index.html").read_text().split("PSNR span below")[1][:300]
    scores = [line.split(",") for line in (report / "scores.csv").read_text().splitlines()[1:]]
    assert {float(s[3]) for s in scores if s[0] == "01"} == {0.0}


@pytest.mark.parametrize("training", ["missing", "empty"])
def test_eval_needs_only_the_test_split(tmp_path, capsys, training):
    """Checking a model on a download of the test videos and labels alone: evaluation never reads training data."""
    info = fl.write_ped2_layout(tmp_path / "data", n_test=2, n_frames=30)
    train = info["dataset_dir"] / "training"
    shutil.rmtree(train)
    if training == "empty":
        train.mkdir()
    ckpt = save_random_checkpoint(tmp_path / "c.pth")
    assert eval_cli(ckpt, tmp_path / "data", tmp_path / "res", "--dataset", "ped2", "--no_pixel_auroc") == 0
    out = capsys.readouterr().out
    assert "micro-AUC:" in out and "not found" not in out
    metrics = json.loads((tmp_path / "res" / "ped2_c" / "metrics.json").read_text())
    assert 0.0 <= metrics["micro_auc"] <= 1.0


@pytest.mark.parametrize("labelled", [True, False], ids=["labelled", "no-labels"])
def test_labels_source_or_why_no_auc_is_said_before_predicting(tmp_path, capsys, monkeypatch, labelled):
    """Before the prediction pass eval.py names where the labels come from, or says why no AUC will be computed;
    the summary at the end names the source again."""
    info = fl.write_ped2_layout(tmp_path / "data", n_test=2, n_frames=12)
    if not labelled:
        (info["dataset_dir"] / "ped2.mat").unlink()
    seen_before = []
    predict_video = eval_script.predict_video

    def first_prediction(*args, **kwargs):
        if not seen_before:
            seen_before.append(capsys.readouterr().out)
        return predict_video(*args, **kwargs)

    monkeypatch.setattr(eval_script, "predict_video", first_prediction)
    ckpt = save_random_checkpoint(tmp_path / "c.pth")
    assert eval_cli(ckpt, tmp_path / "data", tmp_path / "res", "--dataset", "ped2", "--no_pixel_auroc") == 0
    after = capsys.readouterr().out
    source = f"labels: {info['dataset_dir'] / 'ped2.mat'}"
    if labelled:
        assert source in seen_before[0] and "no AUC" not in seen_before[0]
        lines = after.splitlines()  # the closing summary: the metric table, then the labels' source
        assert lines.index(source) > next(i for i, line in enumerate(lines) if line.startswith("Frame-level"))
    else:
        assert "no AUC: AUC needs frame labels" in seen_before[0] and "no frame labels were found" in seen_before[0]
        assert "labels: " not in seen_before[0] + after


def _real_ped2_video(shared_data: Path, root: Path, name: str, abnormal: tuple[int, int]) -> Path:
    """A ped2 folder of links to the real training videos and test video `name`, labelled by testing/labels.csv
    with one interval (1-based inclusive)."""
    ds = root / "ped2"
    (ds / "testing" / "frames").mkdir(parents=True)
    (ds / "training").symlink_to(shared_data / "ped2" / "training")
    (ds / "testing" / "frames" / name).symlink_to(shared_data / "ped2" / "testing" / "frames" / name)
    (ds / "testing" / "labels.csv").write_text(f"video,start,end\n{name},{abnormal[0]},{abnormal[1]}\n")
    return ds / "testing" / "labels.csv"


def test_an_auc_below_one_half_says_the_labels_may_be_inverted(shared_data, tmp_path, capsys):
    """The shipped model on real Ped2 test video 01 with its labels inverted (frames 1-60 marked abnormal; officially
    61-180 are): micro-AUC falls below 0.5 and the console, metrics.json and the page say the labels may be
    inverted; the same scores against the official labels are above 0.5."""
    from sklearn.metrics import roc_auc_score

    labels_csv = _real_ped2_video(shared_data, tmp_path / "data", "01", (1, 60))
    shipped = ROOT / "weights" / "ped2_cpu.pth"
    argv = ("--dataset", "ped2", "--no_pixel_auroc", "--threads", "1")
    assert eval_cli(shipped, tmp_path / "data", tmp_path / "res", *argv) == 0
    out = capsys.readouterr().out
    metrics = json.loads((tmp_path / "res" / "ped2_ped2_cpu" / "metrics.json").read_text())
    assert metrics["micro_auc"] < 0.5 and metrics["label_source"] == str(labels_csv)
    note = (
        f"frame-level micro-AUC {metrics['micro_auc']:.4f} is below 0.5 (worse than chance): the labels ({labels_csv})"
    )
    assert f"note: {note}" in out and "1 = normal instead of 1 = abnormal" in out
    assert any(n.startswith(note) for n in metrics["notes"])
    assert "may be inverted" in (tmp_path / "res" / "ped2_ped2_cpu" / "index.html").read_text()
    with open(tmp_path / "res" / "ped2_ped2_cpu" / "scores.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    official = [int(int(r["frame"]) + 1 >= 61) for r in rows]  # frame numbers are 0-based, intervals 1-based
    assert roc_auc_score(official, [float(r["score"]) for r in rows]) > 0.5


@pytest.mark.slow
def test_eval_on_the_real_ped2_test_download_alone(shared_data, tmp_path, capsys):
    """Ped2's testing/ folder and ped2.mat, without training/: all 12 test videos scored against their labels."""
    root = tmp_path / "data" / "ped2"
    root.mkdir(parents=True)
    (root / "testing").symlink_to(shared_data / "ped2" / "testing")
    (root / "ped2.mat").symlink_to(shared_data / "ped2" / "ped2.mat")
    ckpt = save_random_checkpoint(tmp_path / "c.pth")
    assert eval_cli(ckpt, tmp_path / "data", tmp_path / "res", "--dataset", "ped2", "--no_pixel_auroc") == 0
    out = capsys.readouterr().out
    assert "scored 1962 frames of 12 test videos" in out and "micro-AUC:" in out  # 2,010 frames, 4 per video unscored
    assert f"labels: {root / 'ped2.mat'}" in out
