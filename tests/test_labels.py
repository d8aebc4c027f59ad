"""Labels and data people make themselves (issue 12): every reasonable form read correctly, every ambiguous or
broken one refused in one line naming the file and the video, all before any training step or prediction.

Each kind gets a small generated input with the correct value (labels, message, nothing written) asserted.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

import fake_layouts as fl
from dataset import LabelNotes, entry_labels, find_dataset
from helpers import eval_cli, train_cli
from utils import FFPError


def read(entry, n: int = 20) -> tuple[list[int], list[str]]:
    """(labels, notes) of one per-video label entry for a video of n frames."""
    notes = LabelNotes()
    return entry_labels(np.asarray(entry), n, "test video v (labels f.mat)", notes).tolist(), notes.lines


def tiny(root: Path, out: Path, dataset: str = "ped2", *extra: str) -> list[str]:
    return ["--dataset", dataset, "--preset", "tiny", "--flownet", "none", "--device", "cpu", "--data_root", str(root),
            "--weights_dir", str(out / "w"), "--log_dir", str(out / "runs"), "--iters", "2", "--val_interval", "2",
            *extra]




def set_gt(info: dict, entries: list) -> Path:
    """Replace the fake ped2's ped2.mat `gt` cell with `entries` (one per test video)."""
    gt = np.empty(len(entries), dtype=object)
    for i, entry in enumerate(entries):
        gt[i] = np.asarray(entry)
    path = info["dataset_dir"] / "ped2.mat"
    scipy.io.savemat(str(path), {"gt": gt})
    return path


# ------------------------------------------------------------------------------------------ 1. intervals
def test_intervals_in_every_orientation():
    """2×K (official), K×2 (one interval per row — [2 3; 9 10; 16 17] is 6 frames, not 2..17), a single
    [start end], 2×1 and 1×2, and no interval at all."""
    six = [0, 1, 1, 0, 0, 0, 0, 0, 1, 1] + [0] * 5 + [1, 1] + [0] * 3
    assert read([[2, 9, 16], [3, 10, 17]]) == (six, [])
    assert read([[2, 3], [9, 10], [16, 17]]) == (six, [])
    assert read([4, 6])[0] == read([[4], [6]])[0] == read([[4, 6]])[0] == [0, 0, 0, 1, 1, 1] + [0] * 14
    assert read(np.zeros((2, 0))) == ([0] * 20, [])


def test_a_2x2_array_is_read_as_the_official_2xK_unless_only_rows_make_sense():
    """Official 2×K when valid ([2 9; 5 12]: 2-5 and 9-12; rows 2-9, 5-12 would overlap, nothing to say);
    [2 3; 9 10] as columns would give overlapping 2-9 and 3-10, so it is read as rows 2-3 and 9-10, and said."""
    assert read([[2, 9], [5, 12]]) == ([0, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1] + [0] * 8, [])
    values, notes = read([[2, 3], [9, 10]])
    assert values == [0, 1, 1, 0, 0, 0, 0, 0, 1, 1] + [0] * 10
    assert len(notes) == 1 and "read as one interval per row (frames 2-3 and 9-10)" in notes[0]


def test_labels_csv_rows_are_taken_as_written_never_re_oriented(tmp_path):
    """labels.csv says what each number is (video,start,end): two overlapping rows are refused (not transposed
    into intervals nobody wrote, as an ambiguous 2×2 .mat array may be), and two valid rows are read as given."""
    fl.write_custom(tmp_path, "mycam", train={"a.avi": 12}, test={"t1.avi": 12})
    csv_path = tmp_path / "mycam" / "testing" / "labels.csv"
    csv_path.write_text("video,start,end\nt1,2,8\nt1,5,10\n")
    with pytest.raises(FFPError, match=r"labels\.csv.*t1.*intervals \[2, 8\] and \[5, 10\] overlap"):
        find_dataset(tmp_path, "mycam")
    csv_path.write_text("video,start,end\nt1,2,3\nt1,9,10\n")
    files = find_dataset(tmp_path, "mycam")
    assert files.test[0].labels.tolist() == [0, 1, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0] and not files.notes.lines


@pytest.mark.parametrize("entry, message", [
    ([[0], [3]], r"interval \[0, 3\] starts at 0; intervals are 1-based inclusive"),
    ([[5], [3]], r"interval \[5, 3\] ends before it starts"),
    ([[2], [40]], r"interval \[2, 40\] is outside the video's 9 frames"),
    ([[2, 5, 8], [6, 7, 9]], r"intervals \[2, 6\] and \[5, 7\] overlap"),
    ([[2.5], [4]], r"interval bounds must be whole numbers, found \[2\.5\]"),
    ([[2], [np.nan]], r"must be whole numbers, found \[nan\]"),
    ([[1, 2, 3], [4, 5, 6], [7, 8, 9]], r"intervals must be 2×K .* got shape \(3, 3\)"),
], ids=["0-based", "start>end", "out-of-range", "overlap", "non-integer", "nan", "3x3"])
def test_broken_intervals_are_refused_naming_the_file_and_the_video(tmp_path, entry, message):
    """Before anything else runs: find_dataset (what train/eval call first) raises, naming ped2.mat and video 01."""
    info = fl.write_ped2_layout(tmp_path, n_test=2, n_frames=8)   # test videos 01 (8 frames) and 02 (9)
    mat = set_gt(info, [[[2], [3]], entry])
    with pytest.raises(FFPError, match=message) as error:
        find_dataset(tmp_path, "ped2")
    assert "test video 02" in str(error.value) and str(mat) in str(error.value)


# ------------------------------------------------------------------------------------------ 2. per-frame labels
@pytest.mark.parametrize("values, expected, note", [
    ([0, 1, 1, 0, 0, 0, 0, 1], [0, 1, 1, 0, 0, 0, 0, 1], False),
    ([False, True, True, False, False, False, False, True], [0, 1, 1, 0, 0, 0, 0, 1], False),
    ([0, 255, 255, 0, 0, 0, 0, 255], [0, 1, 1, 0, 0, 0, 0, 1], True),
    ([0.0, 1.0, 1.0, 0, 0, 0, 0, 1.0], [0, 1, 1, 0, 0, 0, 0, 1], False),
], ids=["0/1", "bool", "0/255", "float-0/1"])
def test_per_frame_labels_in_npy(tmp_path, values, expected, note):
    info = fl.write_shanghaitech_layout(tmp_path, n_test=2, n_frames=8)
    for video in info["test_videos"]:
        np.save(info["dataset_dir"] / "testing" / "test_frame_mask" / f"{video}.npy",
                np.array(values + [0] * (info["test_videos"][video] - 8)))
    files = find_dataset(tmp_path, "shanghaitech")
    assert files.test[0].labels.tolist() == expected
    assert (files.notes.lines == ["frame labels stored as 0/255 were read as 0 = normal, 255 = abnormal"]) == note


@pytest.mark.parametrize("values, message", [
    ([0, 1, 2, 0, 0, 0, 0, 1], r"must be 0/1 \(or bool, or 0/255\), found values \[0, 1, 2\]"),
    ([0, 0.5, 1, 0, 0, 0, 0, 1], r"frame labels must be whole numbers, found \[0\.5\]"),
    ([0, -1, 0, 0, 0, 0, 0, 0], r"found values \[-1, 0\]"),
    ([0, 1, 0], r"3 labels but 8 frames"),
], ids=["0/1/2", "fraction", "negative", "length"])
def test_broken_per_frame_labels_are_refused(tmp_path, values, message):
    info = fl.write_shanghaitech_layout(tmp_path, n_test=1, n_frames=8)
    path = info["dataset_dir"] / "testing" / "test_frame_mask" / "01_0014.npy"
    np.save(path, np.array(values))
    with pytest.raises(FFPError, match=message) as error:
        find_dataset(tmp_path, "shanghaitech")
    assert "test video 01_0014" in str(error.value) and str(path) in str(error.value)


def test_per_frame_labels_as_text_files(tmp_path):
    info = fl.write_shanghaitech_layout(tmp_path, n_test=1, n_frames=8)
    folder = info["dataset_dir"] / "testing" / "test_frame_mask"
    (folder / "01_0014.npy").unlink()
    (folder / "01_0014.csv").write_text("label\n0\n0\n1\n1\n0\n0\n0\n0\n")
    assert find_dataset(tmp_path, "shanghaitech").test[0].labels.tolist() == [0, 0, 1, 1, 0, 0, 0, 0]


def test_per_frame_vectors_in_a_mat_cell(tmp_path):
    """Some releases store one 0/1 vector per video in the .mat cell instead of intervals."""
    info = fl.write_ped2_layout(tmp_path, n_test=2, n_frames=8)
    set_gt(info, [np.array([[0, 0, 1, 1, 1, 0, 0, 0]]), np.array([0, 1, 0, 0, 0, 0, 0, 0, 1])])
    files = find_dataset(tmp_path, "ped2")
    assert [v.labels.tolist() for v in files.test] == [[0, 0, 1, 1, 1, 0, 0, 0], [0, 1, 0, 0, 0, 0, 0, 0, 1]]


# ------------------------------------------------------------------------------------------ 3. file formats
def write_v73(path: Path, entries: list[np.ndarray], name: str = "gt") -> Path:
    """A MATLAB v7.3 file as MATLAB writes it: a 512-byte MATLAB header block, then HDF5 with the cell as
    object references and every array stored transposed (column-major)."""
    import h5py
    with h5py.File(path, "w", userblock_size=512) as f:
        refs = f.create_group("#refs#")
        cell = np.empty((len(entries), 1), dtype=h5py.ref_dtype)
        for i, entry in enumerate(entries):
            data = refs.create_dataset(f"e{i}", data=np.asarray(entry, dtype=np.float64).T)
            data.attrs["MATLAB_class"] = np.bytes_("double")
            cell[i, 0] = data.ref
        var = f.create_dataset(name, data=cell)
        var.attrs["MATLAB_class"] = np.bytes_("cell")
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Nov 30 12:00:00 2026 HDF5 schema 1.00 ."
    with open(path, "r+b") as f:
        f.write(header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM")
    return path


def test_matlab_v73_labels_are_read_with_h5py(tmp_path):
    info = fl.write_ped2_layout(tmp_path, n_test=2, n_frames=8)
    mat = info["dataset_dir"] / "ped2.mat"
    with pytest.raises(NotImplementedError):   # what scipy alone says about such a file
        scipy.io.loadmat(str(write_v73(mat, [np.array([[3], [5]]), np.array([[2, 7], [3, 9]])])))
    files = find_dataset(tmp_path, "ped2")
    assert [v.labels.tolist() for v in files.test] == [[0, 0, 1, 1, 1, 0, 0, 0], [0, 1, 1, 0, 0, 0, 1, 1, 1]]


def test_a_damaged_v73_file_says_how_to_resave(tmp_path):
    info = fl.write_ped2_layout(tmp_path, n_test=2, n_frames=8)
    mat = write_v73(info["dataset_dir"] / "ped2.mat", [np.array([[3], [5]]), np.array([[2], [3]])])
    mat.write_bytes(mat.read_bytes()[:700])
    with pytest.raises(FFPError, match=r"ped2\.mat \(MATLAB v7\.3 / HDF5\).*save\(\.\.\., '-v7'\)"):
        find_dataset(tmp_path, "ped2")


def test_another_variable_name_is_read_and_said(tmp_path):
    info = fl.write_ped2_layout(tmp_path, n_test=1, n_frames=8)
    gt = np.empty(1, dtype=object)
    gt[0] = np.array([[3], [5]])
    scipy.io.savemat(str(info["dataset_dir"] / "ped2.mat"), {"frame_labels": gt})
    files = find_dataset(tmp_path, "ped2")
    assert files.test[0].labels.tolist() == [0, 0, 1, 1, 1, 0, 0, 0]
    assert files.notes.lines == [f"labels read from variable 'frame_labels' of {info['dataset_dir'] / 'ped2.mat'} "
                                 f"(the official name is 'gt')"]


# ------------------------------------------------------------------------------------------ checks before any work
def test_bad_labels_stop_train_and_eval_before_any_work(tmp_path, capsys):
    """Labels of 0/3 are refused by train.py before it starts (no 'FFP training on', nothing written) and by
    eval.py before it predicts (no result folder); 0/255 labels are accepted and said once."""
    info = fl.write_shanghaitech_layout(tmp_path / "data", n_train=1, n_test=2, n_frames=8)
    masks = info["dataset_dir"] / "testing" / "test_frame_mask"
    for video, n in info["test_videos"].items():
        np.save(masks / f"{video}.npy", np.array([0, 3] * (n // 2) + [0] * (n % 2)))
    assert train_cli(tiny(tmp_path / "data", tmp_path, "shanghaitech")) == 1
    captured = capsys.readouterr()
    assert "FFP training on" not in captured.out and "found values [0, 3]" in captured.err
    assert not (tmp_path / "w").exists() or not list((tmp_path / "w").iterdir())
    for video, n in info["test_videos"].items():
        np.save(masks / f"{video}.npy", np.array([0, 255] * (n // 2) + [0] * (n % 2)))
    assert train_cli(tiny(tmp_path / "data", tmp_path, "shanghaitech")) == 0
    out = capsys.readouterr().out
    assert out.count("0/255 were read as 0 = normal, 255 = abnormal") == 1
    np.save(masks / f"{next(iter(info['test_videos']))}.npy", np.zeros(3))
    assert eval_cli(tmp_path / "w" / "shanghaitech_latest.pth", tmp_path / "data", tmp_path / "res") == 1
    assert "3 labels but 8 frames" in capsys.readouterr().err and not (tmp_path / "res").exists()


@pytest.mark.parametrize("how", ["one_class", "missing"])
def test_training_without_usable_labels_runs_without_validation(tmp_path, capsys, how):
    """All-normal test labels (own data with no anomaly yet) or no labels: one warning at start, training runs
    through its validation steps, 'latest' is written, 'best' is not, and the end says so."""
    info = fl.write_ped2_layout(tmp_path / "data", n_test=2, n_frames=8)
    if how == "one_class":
        set_gt(info, [np.zeros((2, 0)), np.zeros((2, 0))])
    else:
        (info["dataset_dir"] / "ped2.mat").unlink()
    assert train_cli(tiny(tmp_path / "data", tmp_path, "ped2", "--iters", "4")) == 0
    out = capsys.readouterr().out
    assert out.count("warning: validation AUC skipped") == 1 and "validation micro-AUC" not in out
    assert ("labelled normal" if how == "one_class" else "no frame labels") in out
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["ped2_latest.pth"]
    assert "no validation ran, so no 'best' checkpoint" in out and "-1.0000" not in out


# ------------------------------------------------------------------------------------------ 5. resume and init_from
@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(data root with ped2 and avenue, a 2-step tiny ped2 run's folder)."""
    root = tmp_path_factory.mktemp("data")
    fl.write_ped2_layout(root, n_test=2, n_frames=8)
    fl.write_avenue_layout(root, n_test=2, n_frames=8)
    out = tmp_path_factory.mktemp("run")
    assert train_cli(tiny(root, out)) == 0
    return root, out


def test_resume_refuses_flags_that_change_data_or_architecture(trained, tmp_path, capsys):
    root, run = trained
    ckpt = run / "w" / "ped2_latest.pth"
    before = ckpt.read_bytes()
    argv = tiny(root, run, "avenue", "--resume", str(ckpt), "--height", "64", "--g_widths", "8,16")
    assert train_cli(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"--resume {ckpt}" in err
    for part in ("--dataset avenue (the checkpoint's: ped2)", "--height 64 (the checkpoint's: 32)",
                 "--g_widths 8,16 (the checkpoint's: 8,16,32)", "--init_from"):
        assert part in err, part
    assert ckpt.read_bytes() == before and not (run / "w" / "avenue_latest.pth").exists()


def test_init_from_fine_tunes_on_other_data(trained, tmp_path, capsys):
    """--init_from: the weights of a ped2 run, a NEW run on avenue (fresh optimizers, step 0 -> iters)."""
    import torch
    root, run = trained
    source = run / "w" / "ped2_latest.pth"
    assert train_cli(tiny(root, tmp_path, "avenue", "--init_from", str(source), "--iters", "3")) == 0
    assert f"from the weights of {source} (new run, step 0)" in capsys.readouterr().out
    state = torch.load(tmp_path / "w" / "avenue_latest.pth", weights_only=True)
    assert state["step"] == 3 and state["init_from"] == str(source) and state["config"]["dataset"] == "avenue"
    assert train_cli(tiny(root, tmp_path / "b", "avenue", "--init_from", str(source), "--height", "64")) == 1
    assert "--height 64 (the weights': 32)" in capsys.readouterr().err


def test_weights_from_before_the_flow_loss_fix(trained, tmp_path, capsys):
    """Classical-flow checkpoints without flownet.loss_units trained their motion loss scaled by 1/400: --resume
    continues with the same loss (λ_op 2 -> 0.005, said), --init_from says what the weights were trained with;
    current checkpoints (loss_units 'pixels') get neither."""
    import torch
    from checkpoint import save_checkpoint
    root, run = trained
    state = torch.load(run / "w" / "ped2_latest.pth", weights_only=True)
    assert state["flownet"]["loss_units"] == "pixels" and state["config"]["lambda_op"] == 2.0
    state["flownet"]["name"] = "ClassicalFlow"
    save_checkpoint(tmp_path / "current.pth", state)
    del state["flownet"]["loss_units"]
    save_checkpoint(tmp_path / "old.pth", state)
    for name, legacy in (("old", True), ("current", False)):
        source = tmp_path / f"{name}.pth"
        assert train_cli(tiny(root, tmp_path / name, "ped2", "--init_from", str(source))) == 0
        assert ("was 0.005 in today's pixel units" in capsys.readouterr().out) == legacy, name   # --init_from
        assert train_cli(tiny(root, tmp_path / name, "ped2", "--resume", str(source), "--iters", "3",
                              "--flownet", "classical")) == 0
        resumed = torch.load(tmp_path / name / "w" / "ped2_latest.pth", weights_only=True)
        assert resumed["config"]["lambda_op"] == (0.005 if legacy else 2.0), name
        assert ("resume: lambda_op: 2.0 -> 0.005 (unchanged training" in capsys.readouterr().out) == legacy


# ------------------------------------------------------------------------------------------ 6. frame folders
def test_os_droppings_in_frame_folders_are_skipped(tmp_path):
    """._000.jpg (a macOS resource fork), .DS_Store, Thumbs.db and desktop.ini never count as frames; a file
    that only pretends to be an image is still an error naming it."""
    info = fl.write_ped2_layout(tmp_path, n_train=1, n_test=1, n_frames=8)
    video = info["dataset_dir"] / "training" / "frames" / "01"
    for junk in ("._000.jpg", ".DS_Store", "Thumbs.db", "desktop.ini", "._.DS_Store"):
        (video / junk).write_bytes(b"\x00\x05\x16\x07 Mac OS X metadata")
    files = find_dataset(tmp_path, "ped2")
    assert len(files.train[0]) == 8 and all(not p.name.startswith(".") for p in files.train[0].source.files)
    from config import build_config
    from dataset import TrainWindows
    TrainWindows(files.train, build_config("ped2", "tiny", {"data_root": str(tmp_path)}))
    (video / "008.jpg").write_text("not an image")
    with pytest.raises(FFPError, match=r"cannot read image .*008\.jpg: not a valid image"):
        TrainWindows(find_dataset(tmp_path, "ped2").train, build_config("ped2", "tiny", {"data_root": str(tmp_path)}))


# ------------------------------------------------------------------------------------------ 7. scores without spread
def static_clip(folder: Path, n: int = 12) -> Path:
    folder.mkdir(parents=True)
    frame = np.full((24, 36, 3), 90, np.uint8)
    for i in range(n):
        cv2.imwrite(str(folder / f"{i:03d}.png"), frame)
    return folder


def test_a_clip_where_nothing_happens_scores_zero_and_says_so(tmp_path, capsys):
    """detect.py --mode whole: every frame's PSNR is the same, so min-max has no spread: scores 0 (no alarm) and a
    note in the output, summary.json and the page. --mode stream on the same clip: one finite z-score for all."""
    from test_detect import read_scores, run_detect
    from test_eval_cli import save_random_checkpoint
    clip, ckpt = static_clip(tmp_path / "clip"), save_random_checkpoint(tmp_path / "c.pth")
    out = run_detect(clip, ckpt, tmp_path / "whole")
    rows = read_scores(out)
    assert len(rows) == 8 and {float(r["score"]) for r in rows} == {0.0} and all(r["above_threshold"] == "0" for r in rows)
    assert "PSNR span below 0.1 dB" in capsys.readouterr().out
    assert any("PSNR span below 0.1 dB" in n for n in json.loads((out / "summary.json").read_text())["notes"])
    assert "PSNR span below 0.1 dB" in (out / "index.html").read_text()
    rows = read_scores(run_detect(clip, ckpt, tmp_path / "stream", "--mode", "stream", "--psnr_mean", "30",
                                  "--psnr_std", "2"))
    assert len({r["score"] for r in rows}) == 1 and np.isfinite(float(rows[0]["score"]))


def test_eval_notes_videos_without_spread(tmp_path, capsys):
    from test_eval_cli import save_random_checkpoint
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


# ------------------------------------------------------------------------------------------ 8. small faults
def test_stale_temp_files_of_this_dataset_are_removed_at_start_and_nothing_else(tmp_path, capsys):
    info_root = tmp_path / "data"
    fl.write_ped2_layout(info_root, n_test=2, n_frames=8)
    weights = tmp_path / "w"
    weights.mkdir()
    mine = [weights / ".ped2_latest.pth.k3j_x9q2.tmp", weights / ".ped2_best.pth.a1b2c3d4.tmp"]
    others = [weights / ".ped1_latest.pth.a1b2c3d4.tmp", weights / "notes.tmp", weights / ".ped2_latest.pth.keep"]
    for path in mine + others:
        path.write_bytes(b"partial")
    assert train_cli(tiny(info_root, tmp_path)) == 0
    assert not any(p.exists() for p in mine) and all(p.exists() for p in others)
    assert capsys.readouterr().out.count("a temp file left by a run killed while saving") == 2
