"""A model file for deployment: export.py --format onnx, and scoring through ONNX Runtime without torch.

Parity with the PyTorch path is checked on real UCSD Ped2 frames with the shipped model (weights/ped2_cpu.pth):
predicted frames within 1e-4 (max abs, fp32), per-frame PSNR within 0.01 dB, identical alarms and events from
detect.py (run with torch made unimportable), and eval.py's micro-AUC within 1e-4.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
from helpers import ROOT, SHARED_DATA, TINY, read_scores, run_detect, save_random_checkpoint

import export
from checkpoint import checkpoint_config, load_checkpoint
from cli import run_cli
from config import DEFAULT_THRESHOLD
from dataset import Video, find_dataset, open_source, video_frame_batches
from dataset.array_batches import ArrayBatches
from inference.onnx_model import METADATA, OUTPUTS, load_onnx_model
from inference.predict import TorchPredictor, generator_from_state, iter_predictions

SHIPPED = ROOT / "weights" / "ped2_cpu.pth"
PED2_TEST = SHARED_DATA / "ped2" / "testing" / "frames"
needs_ped2 = pytest.mark.skipif(not PED2_TEST.is_dir(), reason=f"real Ped2 test frames not found at {PED2_TEST}")

# Runs a script with torch unimportable: `import torch` (or anything that needs it) raises ImportError.
# (An import hook, not sys.modules['torch'] = None: libraries such as SciPy look torch up in sys.modules.)
WITHOUT_TORCH = """
import runpy, sys


class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ImportError(f"{name} is made unimportable by this test")


sys.meta_path.insert(0, NoTorch())
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    if any(m.split(".")[0] == "torch" for m in sys.modules):
        sys.exit("torch was imported")
"""


def run_without_torch(script: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH, script, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def ped2_onnx(tmp_path_factory) -> Path:
    """weights/ped2_cpu.pth exported to ONNX, as README "An ONNX model file" does it."""
    out = tmp_path_factory.mktemp("onnx") / "ped2.onnx"
    assert export.main([str(SHIPPED), str(out), "--threads", "2"]) == 0
    return out


@pytest.fixture(scope="module")
def shipped_state() -> dict:
    return load_checkpoint(SHIPPED)  # as every command reads it: in today's checkpoint format


def metadata(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def test_export_writes_a_checked_graph_with_what_detection_needs(ped2_onnx, shipped_state):
    model = onnx.load(str(ped2_onnx))
    onnx.checker.check_model(model, full_check=True)
    (graph_input,) = model.graph.input
    dims = graph_input.type.tensor_type.shape.dim
    assert graph_input.name == "windows" and graph_input.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [5, 256, 384, 3]  # dynamic batch
    assert [o.name for o in model.graph.output] == list(OUTPUTS)
    meta = metadata(ped2_onnx)
    assert set(meta) == set(METADATA)
    assert json.loads(meta["ffp.fps"]) == 10.0 and "documented" in meta["ffp.fps_origin"]
    assert json.loads(meta["ffp.psnr_stats"]) == shipped_state["psnr_stats"]
    assert json.loads(meta["ffp.step"]) == shipped_state["step"] == 3000
    assert json.loads(meta["ffp.flownet"]) == shipped_state["flownet"]
    assert json.loads(meta["ffp.selected_with_test_labels"]) is False
    assert json.loads(meta["ffp.default_threshold"]) == DEFAULT_THRESHOLD
    assert meta["ffp.channel_order"] == "RGB" and "uint8" in meta["ffp.value_range"]
    assert json.loads(meta["ffp.config"]) == checkpoint_config(shipped_state).to_dict()


@needs_ped2
def test_predicted_frames_and_psnr_match_pytorch_on_real_ped2(ped2_onnx, shipped_state):
    """The same 24 windows of Ped2 test video 02 through PyTorch and ONNX Runtime, at batch 24 and batch 1."""
    cfg = checkpoint_config(shipped_state)
    video = Video("02", open_source(PED2_TEST / "02"))
    frames = np.stack([rgb for _, (_, rgb) in zip(range(28), video.source.frames(cfg.height, cfg.width))])
    generator = generator_from_state(shipped_state, cfg, torch.device("cpu"), "shipped")
    batch = torch.from_numpy(frames).permute(0, 3, 1, 2)
    (reference,) = iter_predictions(generator, [batch], cfg.in_frames, torch.device("cpu"))
    predictor, _ = load_onnx_model(ped2_onnx, threads=2)
    windows = np.stack([frames[i - 4 : i + 1] for i in range(4, 28)])
    prediction, psnr, error = predictor.session.run(list(OUTPUTS), {"windows": windows})
    assert np.abs(prediction - reference.preds.numpy()).max() < 1e-4
    assert np.abs(psnr - reference.psnr.numpy()).max() < 0.01
    assert np.abs(error - reference.error_maps().numpy()).max() < 1e-5
    one = predictor.session.run(["psnr"], {"windows": windows[5:6]})[0]
    assert one.shape == (1,) and abs(float(one[0]) - float(psnr[5])) < 0.01


@needs_ped2
def test_both_predictors_stream_the_same_frames(ped2_onnx, shipped_state):
    """OnnxPredictor over ArrayBatches and TorchPredictor over FrameBatches: the same targets in the same places."""
    cfg = checkpoint_config(shipped_state)
    video = Video("01", open_source(PED2_TEST / "01")).head(40)
    torch_side = TorchPredictor(generator_from_state(shipped_state, cfg, torch.device("cpu"), "s"), 4, "cpu")
    onnx_side, _ = load_onnx_model(ped2_onnx, threads=2)
    a = list(torch_side.stream(video_frame_batches(video, cfg, 7, workers=0)))
    batches = ArrayBatches(video, cfg.height, cfg.width, 7)
    b = list(onnx_side.stream(batches))
    assert [p.first_index for p in a] == [p.first_index for p in b] and list(batches.numbers) == list(range(40))
    assert np.abs(np.concatenate([p.psnr for p in a]) - np.concatenate([p.psnr for p in b])).max() < 0.01
    assert np.array_equal(a[2].target_images(), b[2].target_images())
    assert np.abs(a[2].prediction_images().astype(int) - b[2].prediction_images()).max() <= 1


def detect_outputs(folder: Path) -> tuple[np.ndarray, list[int], list[dict]]:
    """(PSNR per scored frame, above_threshold flags, events) of a detect.py result folder."""
    rows = read_scores(folder)
    events = json.loads((folder / "summary.json").read_text())["events"]
    return np.array([float(r["psnr"]) for r in rows]), [int(r["above_threshold"]) for r in rows], events


@pytest.mark.slow
@needs_ped2
@pytest.mark.parametrize("mode", ["stream", "whole"])
def test_detect_without_torch_matches_pytorch_on_real_ped2(ped2_onnx, tmp_path, mode):
    """detect.py with the ONNX file, torch unimportable, against detect.py with the checkpoint: Ped2 test video 02
    (a cyclist and a cart: 2 events in stream mode, whose baseline follows this clip's normal level; 1 in whole
    mode)."""
    clip = PED2_TEST / "02"
    reference = detect_outputs(run_detect(clip, SHIPPED, tmp_path / "torch", "--mode", mode, "--threads", "2"))
    extra = ["--save_video"] if mode == "stream" else []
    done = run_without_torch(
        "detect.py", "--video", str(clip), "--trained_model", str(ped2_onnx), "--mode", mode,
        "--out_dir", str(tmp_path / "onnx"), "--threads", "2", *extra,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "onnx" / "detect_02"
    psnr, alarms, events = detect_outputs(folder)
    assert len(psnr) == len(reference[0]) == 176
    assert np.abs(psnr - reference[0]).max() < 0.01
    assert alarms == reference[1] and sum(alarms) > 0
    assert (
        events == reference[2]
        if mode == "whole"
        else [(e["first_frame"], e["last_frame"]) for e in events]
        == [(e["first_frame"], e["last_frame"]) for e in reference[2]]
    )
    assert len(events) == {"stream": 2, "whole": 1}[mode]
    summary = json.loads((folder / "summary.json").read_text())
    assert "onnxruntime" in summary["run"] and "torch" not in summary["run"]
    if extra:
        assert (folder / "heatmap.mp4").stat().st_size > 0 and (folder / "index.html").is_file()


@pytest.mark.slow
@needs_ped2
def test_a_live_stream_without_torch(ped2_onnx, tmp_path):
    """detect.py watching an MJPEG stream (served here on 127.0.0.1) through the ONNX file, torch unimportable: the
    inserted object is one event, in events.jsonl with its snapshot."""
    from helpers import ped2_stream, the_one_event
    from live_server import MjpegServer

    abnormal = range(50, 70)
    with MjpegServer(ped2_stream(100, abnormal=abnormal), fps=10) as server:
        done = run_without_torch(
            "detect.py", "--video", server.url, "--trained_model", str(ped2_onnx), "--out_dir", str(tmp_path),
            "--max_frames", "100", "--threads", "1", "--event_gap", "2s", timeout=180,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert cv2.imread(str(folder / the_one_event(folder, abnormal)["snapshot"])) is not None
    assert "onnxruntime" in json.loads((folder / "summary.json").read_text())["run"]


@pytest.mark.slow
@needs_ped2
def test_eval_with_the_onnx_file_matches_pytorch_micro_auc(ped2_onnx, tmp_path):
    """eval.py on Ped2 test videos 01-02 with their official labels: the ONNX file, torch unimportable, gives the
    checkpoint's micro-AUC within 1e-4."""
    root = tmp_path / "data"
    (root / "ped2" / "testing" / "frames").mkdir(parents=True)
    (root / "ped2" / "training" / "frames").mkdir(parents=True)
    for split in ("training", "testing"):
        for name in ("01", "02"):
            (root / "ped2" / split / "frames" / name).symlink_to(SHARED_DATA / "ped2" / split / "frames" / name)
    masks = root / "ped2" / "testing" / "test_frame_mask"  # one label per frame (the ShanghaiTech layout)
    masks.mkdir()
    for video in find_dataset(SHARED_DATA, "ped2").test[:2]:  # labels from the official ped2.mat
        np.save(masks / f"{video.name}.npy", video.labels)
    common = ["--dataset", "ped2", "--data_root", str(root), "--threads", "2", "--no_pixel_auroc"]
    torch_run = subprocess.run(
        [sys.executable, "eval.py", "--trained_model", str(SHIPPED), "--out_dir", str(tmp_path / "t"), *common],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert torch_run.returncode == 0, torch_run.stderr
    onnx_run = run_without_torch(
        "eval.py", "--trained_model", str(ped2_onnx), "--out_dir", str(tmp_path / "o"), *common, timeout=600
    )
    assert onnx_run.returncode == 0, onnx_run.stderr
    (t_metrics,) = (tmp_path / "t").glob("*/metrics.json")
    (o_metrics,) = (tmp_path / "o").glob("*/metrics.json")
    micro_t = json.loads(t_metrics.read_text())["micro_auc"]
    micro_o = json.loads(o_metrics.read_text())["micro_auc"]
    assert 0.5 < micro_t < 1 and abs(micro_o - micro_t) < 1e-4


# ----------------------------------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """30 frames of noise in a folder (a 3-second clip at 10 fps)."""
    folder = tmp_path_factory.mktemp("clip")
    rng = np.random.default_rng(0)
    for i in range(30):
        cv2.imwrite(str(folder / f"{i:03d}.png"), rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    return folder


def detect_error(capsys, clip: Path, model: Path, *extra: str) -> str:
    """detect.py's one error line for `model` (exit status 2 or 1)."""
    import detect

    argv = ["--video", str(clip), "--trained_model", str(model), "--device", "cpu", *extra]
    assert run_cli(detect.main, argv) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err.strip()


def foreign_model(path: Path) -> Path:
    """An ONNX file from elsewhere: one float input 'x', one output, no metadata."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 224, 224])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 224, 224])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "classifier", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


def edited_copy(source: Path, path: Path, **changes: str | None) -> Path:
    """`source` with metadata keys changed (a value) or removed (None); 'ffp_x' names key 'ffp.x'."""
    model = onnx.load(str(source))
    kept = {p.key: p.value for p in model.metadata_props}
    for key, value in changes.items():
        kept.pop(key.replace("_", ".", 1), None)
        if value is not None:
            kept[key.replace("_", ".", 1)] = value
    del model.metadata_props[:]
    for key, value in kept.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


def test_a_foreign_onnx_file_is_named_in_one_line(tmp_path, capsys, clip):
    line = detect_error(capsys, clip, foreign_model(tmp_path / "classifier.onnx"))
    assert line.startswith("error: --trained_model") and "expected one input 'windows'" in line
    assert "x (float" in line and "export.py --format onnx" in line


def test_missing_or_inconsistent_metadata_is_named(ped2_onnx, tmp_path, capsys, clip):
    bare = edited_copy(ped2_onnx, tmp_path / "bare.onnx", ffp_format=None, ffp_config=None, ffp_height=None)
    line = detect_error(capsys, clip, bare)
    assert "metadata ffp.format, ffp.config, ffp.height missing" in line
    cfg = json.loads(metadata(ped2_onnx)["ffp.config"])
    resized = edited_copy(
        ped2_onnx, tmp_path / "resized.onnx", ffp_height="240", ffp_config=json.dumps({**cfg, "height": 240})
    )
    line = detect_error(capsys, clip, resized)
    assert "windows of 5 frames of 240×384" in line and "[5, 256, 384, 3]" in line
    disagree = edited_copy(ped2_onnx, tmp_path / "disagree.onnx", ffp_width="320")
    assert "ffp.width is 320 but its ffp.config says 384" in detect_error(capsys, clip, disagree)


def test_stream_mode_without_statistics_says_what_to_pass(ped2_onnx, tmp_path, capsys, clip):
    no_stats = edited_copy(ped2_onnx, tmp_path / "no_stats.onnx", ffp_psnr_stats="null")
    line = detect_error(capsys, clip, no_stats, "--mode", "stream")
    assert "ffp.psnr_stats" in line and "--psnr_mean and --psnr_std" in line


def test_not_an_onnx_file(tmp_path, capsys, clip):
    fake = tmp_path / "model.onnx"
    fake.write_bytes(b"PK\x03\x04 this is a zip, not a protobuf")
    assert "not an ONNX model ONNX Runtime can load" in detect_error(capsys, clip, fake)
    assert "no such file" in detect_error(capsys, clip, tmp_path / "absent.onnx")


def test_export_refuses_a_name_that_hides_the_format(tmp_path, capsys):
    assert run_cli(export.main, [str(SHIPPED), str(tmp_path / "model.pth"), "--format", "onnx"]) != 0
    assert "ONNX files must end in .onnx" in capsys.readouterr().err
    assert run_cli(export.main, [str(SHIPPED), str(tmp_path / "model.onnx"), "--format", "pth"]) != 0
    assert "other files must not" in capsys.readouterr().err and not list(tmp_path.iterdir())


@pytest.mark.parametrize("kind", ["onnx", "pth"])
def test_a_faster_input_than_the_models_rate_is_said_and_resampled(ped2_onnx, tmp_path, capsys, clip, kind):
    """--fps 25 on a frame folder for a model trained on 10 fps footage (the ONNX metadata's or the checkpoint's
    rate): said, and the frames are resampled by their numbers at 25 fps (a folder's own times are at 10 fps)."""
    import detect

    model = ped2_onnx if kind == "onnx" else SHIPPED
    argv = ["--video", str(clip), "--trained_model", str(model), "--fps", "25", "--out_dir", str(tmp_path / "r")]
    assert run_cli(detect.main, [*argv, "--device", "cpu", "--threads", "2"]) == 0
    out = capsys.readouterr().out
    assert "runs at 25 fps and the model was trained on 10 fps footage" in out
    with open(next((tmp_path / "r").glob("*/scores.csv")), newline="") as f:
        frames = [int(row["frame"]) for row in csv.DictReader(f)]
    # 1.2 s at 25 fps -> 13 frames nearest the 10 fps ticks (0, 2, 4, 7, 9, 12, ...); the first 4 are a window's history
    assert frames == [9, 12, 14, 17, 19, 22, 24, 27, 29]


def test_a_tiny_checkpoint_round_trips_through_onnx(tmp_path, clip):
    """Any checkpoint exports (here the suite's tiny random one, 32×32, in checkpoint format 1 without a frame rate,
    read as the synthetic dataset's), and its ONNX file scores a clip in whole mode like the checkpoint does."""
    stats = {"mean": 10.0, "std": 1.0, "n": 1}
    ckpt = save_random_checkpoint(tmp_path / "tiny.pth", psnr_stats=stats, format_version=1)
    assert export.main([str(ckpt), str(tmp_path / "tiny.onnx")]) == 0
    _, info = load_onnx_model(tmp_path / "tiny.onnx", threads=1)
    assert (info.cfg.height, info.cfg.width) == (TINY.height, TINY.width) and info.fps == 10.0  # synthetic: 10 fps
    a = read_scores(run_detect(clip, ckpt, tmp_path / "a", "--threads", "1"))
    b = read_scores(run_detect(clip, tmp_path / "tiny.onnx", tmp_path / "b", "--threads", "1"))
    assert [r["frame"] for r in a] == [r["frame"] for r in b]
    assert max(abs(float(x["psnr"]) - float(y["psnr"])) for x, y in zip(a, b)) < 0.01
