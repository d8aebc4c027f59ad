"""Labels and data people make themselves (issue 12): every reasonable form read correctly, every ambiguous or
broken one refused in one line naming the file and the video, all before any training step or prediction.

Each kind gets a small generated input with the correct value (labels, message, nothing written) asserted.
"""

from __future__ import annotations

from pathlib import Path

import fake_layouts as fl
import numpy as np
import pytest
import scipy.io
from helpers import eval_cli, tiny_args, train_cli

from dataset import LabelNotes, entry_labels, find_dataset
from errors import FFPError


def read(entry, n: int = 20) -> tuple[list[int], list[str]]:
    """(labels, notes) of one per-video label entry for a video of n frames."""
    notes = LabelNotes()
    return entry_labels(np.asarray(entry), n, "test video v (labels f.mat)", notes).tolist(), notes.lines


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


@pytest.mark.parametrize(
    "entry, message",
    [
        ([[0], [3]], r"interval \[0, 3\] starts at 0; intervals are 1-based inclusive"),
        ([[5], [3]], r"interval \[5, 3\] ends before it starts"),
        ([[2], [40]], r"interval \[2, 40\] is outside the video's 9 frames"),
        ([[2, 5, 8], [6, 7, 9]], r"intervals \[2, 6\] and \[5, 7\] overlap"),
        ([[2.5], [4]], r"interval bounds must be whole numbers, found \[2\.5\]"),
        ([[2], [np.nan]], r"must be whole numbers, found \[nan\]"),
        ([[1, 2, 3], [4, 5, 6], [7, 8, 9]], r"intervals must be 2×K .* got shape \(3, 3\)"),
    ],
    ids=["0-based", "start>end", "out-of-range", "overlap", "non-integer", "nan", "3x3"],
)
def test_broken_intervals_are_refused_naming_the_file_and_the_video(tmp_path, entry, message):
    """Before anything else runs: find_dataset (what train/eval call first) raises, naming ped2.mat and video 01."""
    info = fl.write_ped2_layout(tmp_path, n_test=2, n_frames=8)  # test videos 01 (8 frames) and 02 (9)
    mat = fl.set_gt(info, [[[2], [3]], entry])
    with pytest.raises(FFPError, match=message) as error:
        find_dataset(tmp_path, "ped2")
    assert "test video 02" in str(error.value) and str(mat) in str(error.value)


# ------------------------------------------------------------------------------------------ 2. per-frame labels
@pytest.mark.parametrize(
    "values, expected, note",
    [
        ([0, 1, 1, 0, 0, 0, 0, 1], [0, 1, 1, 0, 0, 0, 0, 1], False),
        ([False, True, True, False, False, False, False, True], [0, 1, 1, 0, 0, 0, 0, 1], False),
        ([0, 255, 255, 0, 0, 0, 0, 255], [0, 1, 1, 0, 0, 0, 0, 1], True),
        ([0.0, 1.0, 1.0, 0, 0, 0, 0, 1.0], [0, 1, 1, 0, 0, 0, 0, 1], False),
    ],
    ids=["0/1", "bool", "0/255", "float-0/1"],
)
def test_per_frame_labels_in_npy(tmp_path, values, expected, note):
    info = fl.write_shanghaitech_layout(tmp_path, n_test=2, n_frames=8)
    for video in info["test_videos"]:
        np.save(
            info["dataset_dir"] / "testing" / "test_frame_mask" / f"{video}.npy",
            np.array(values + [0] * (info["test_videos"][video] - 8)),
        )
    files = find_dataset(tmp_path, "shanghaitech")
    assert files.test[0].labels.tolist() == expected
    assert (files.notes.lines == ["frame labels stored as 0/255 were read as 0 = normal, 255 = abnormal"]) == note


@pytest.mark.parametrize(
    "values, message",
    [
        ([0, 1, 2, 0, 0, 0, 0, 1], r"must be 0/1 \(or bool, or 0/255\), found values \[0, 1, 2\]"),
        ([0, 0.5, 1, 0, 0, 0, 0, 1], r"frame labels must be whole numbers, found \[0\.5\]"),
        ([0, -1, 0, 0, 0, 0, 0, 0], r"found values \[-1, 0\]"),
        ([0, 1, 0], r"3 labels but 8 frames"),
    ],
    ids=["0/1/2", "fraction", "negative", "length"],
)
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
    fl.set_gt(info, [np.array([[0, 0, 1, 1, 1, 0, 0, 0]]), np.array([0, 1, 0, 0, 0, 0, 0, 0, 1])])
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
    with pytest.raises(NotImplementedError):  # what scipy alone says about such a file
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
    assert files.notes.lines == [
        f"labels read from variable 'frame_labels' of {info['dataset_dir'] / 'ped2.mat'} (the official name is 'gt')"
    ]


# ------------------------------------------------------------------------------------------ 4. checks before any work
def test_bad_labels_stop_train_and_eval_before_any_work(tmp_path, capsys):
    """Labels of 0/3 are refused by train.py before it starts (no 'FFP training on', nothing written) and by
    eval.py before it predicts (no result folder); 0/255 labels are accepted and said once."""
    info = fl.write_shanghaitech_layout(tmp_path / "data", n_train=1, n_test=2, n_frames=8)
    masks = info["dataset_dir"] / "testing" / "test_frame_mask"
    for video, n in info["test_videos"].items():
        np.save(masks / f"{video}.npy", np.array([0, 3] * (n // 2) + [0] * (n % 2)))
    assert train_cli(tiny_args(tmp_path / "data", tmp_path, 2, dataset="shanghaitech", val_interval=2)) == 1
    captured = capsys.readouterr()
    assert "FFP training on" not in captured.out and "found values [0, 3]" in captured.err
    assert not (tmp_path / "w").exists() or not list((tmp_path / "w").iterdir())
    for video, n in info["test_videos"].items():
        np.save(masks / f"{video}.npy", np.array([0, 255] * (n // 2) + [0] * (n % 2)))
    assert train_cli(tiny_args(tmp_path / "data", tmp_path, 2, dataset="shanghaitech", val_interval=2)) == 0
    out = capsys.readouterr().out
    assert out.count("0/255 were read as 0 = normal, 255 = abnormal") == 1
    np.save(masks / f"{next(iter(info['test_videos']))}.npy", np.zeros(3))
    assert eval_cli(tmp_path / "w" / "shanghaitech_latest.pth", tmp_path / "data", tmp_path / "res") == 1
    assert "3 labels but 8 frames" in capsys.readouterr().err and not (tmp_path / "res").exists()


# ------------------------------------------------------------------------------------------ 5. frame folders
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


# ------------------------------------------------------------------------------------------ two sources, flat arrays
def _intervals(labels: np.ndarray) -> np.ndarray:
    """2×K 1-based inclusive intervals (the official .mat orientation) of a 0/1 vector."""
    edges = np.diff(np.concatenate([[0], labels, [0]]))
    starts, ends = np.flatnonzero(edges == 1) + 1, np.flatnonzero(edges == -1)
    return np.stack([starts, ends]).astype(np.uint16)


def _m_file(path: Path, entries: list[np.ndarray]) -> Path:
    """A UCSD `<name>.m` label script with one line per entry (2×K intervals)."""
    lines = ["TestVideoFile = {};"] + [
        f"TestVideoFile{{end+1}}.gt_frame = [{', '.join(f'{s}:{e}' for s, e in entry.T)}];" for entry in entries
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_second_label_source_that_disagrees_is_named_with_its_videos_and_frames(tmp_path):
    """ped2.mat gives the labels; a UCSDped2.m beside it that moves video 01's interval by 2 frames is compared and
    named, with the frames that differ counted, while the labels used stay the .mat's."""
    info = fl.write_ped2_layout(tmp_path, n_test=3, n_frames=12)
    wanted = [fl.fake_intervals(i, n) for i, n in enumerate(info["test_videos"].values())]
    moved = [w.copy() for w in wanted]
    moved[0][0, 0] += 2  # video 01's interval starts 2 frames later
    m_path = _m_file(info["dataset_dir"] / "UCSDped2.m", moved)
    files = find_dataset(tmp_path, "ped2")
    assert files.label_source == str(info["dataset_dir"] / "ped2.mat")
    for video in files.test:
        np.testing.assert_array_equal(video.labels, info["labels"][video.name])
    n = info["test_videos"]["01"]
    assert files.notes.lines == [f"from {files.label_source}; {m_path} disagrees on video 01 (2 of {n} frames)"]
    _m_file(m_path, wanted)
    assert find_dataset(tmp_path, "ped2").notes.lines == []  # agreeing sources: nothing to say


def test_a_second_source_that_does_not_check_is_said_and_does_not_stop_the_run(tmp_path):
    info = fl.write_ped2_layout(tmp_path, n_test=2, n_frames=8)
    m_path = _m_file(info["dataset_dir"] / "UCSDped2.m", [fl.fake_intervals(0, 8)])  # one video of two
    files = find_dataset(tmp_path, "ped2")
    assert files.labelled and len(files.notes.lines) == 1
    assert files.notes.lines[0].startswith(f"from {files.label_source}; {m_path} was not compared with them:")
    assert "lists 1 test videos but 2 were found" in files.notes.lines[0]


def test_real_avenue_masks_and_an_interval_mat_that_disagree_on_video_18(shared_data, tmp_path):
    """The real volLabel masks of Avenue test videos 8 and 18 beside an avenue.mat whose video 18 interval ends
    early (as the interval file and the masks officially disagree there): the note names video 18 and the frames."""
    real = {
        name: shared_data / "labels" / "avenue" / "testing_label_mask" / f"{int(name)}_label.mat"
        for name in ("08", "18")
    }
    masks = {name: scipy.io.loadmat(str(path))["volLabel"].reshape(-1) for name, path in real.items()}
    labels = {name: np.array([int(np.any(m)) for m in vol]) for name, vol in masks.items()}
    ds = tmp_path / "avenue"
    fl.write_frame_folder(ds / "training" / "frames" / "01", range(6), "{:04d}.jpg")
    label_dir = ds / "testing_label_mask"
    label_dir.mkdir(parents=True)
    for name, path in real.items():
        fl.write_frame_folder(ds / "testing" / "frames" / name, range(len(labels[name])), "{:04d}.jpg")
        (label_dir / path.name).symlink_to(path)
    shortened = labels["18"].copy()
    shortened[-40:] = 0
    gt = np.empty(2, dtype=object)
    gt[0], gt[1] = _intervals(labels["08"]), _intervals(shortened)
    scipy.io.savemat(str(ds / "avenue.mat"), {"gt": gt})
    files = find_dataset(tmp_path, "avenue")
    assert files.label_source == str(ds / "avenue.mat")
    np.testing.assert_array_equal(files.test[1].labels, shortened)
    n = int(np.count_nonzero(shortened != labels["18"]))
    assert files.notes.lines == [
        f"from {ds / 'avenue.mat'}; {label_dir} disagrees on video 18 ({n} of {len(shortened):,} frames)"
    ]


def _flat_ped2(tmp_path: Path, n_test: int = 3) -> tuple[dict, Path]:
    """A fake ped2 whose only labels are a flat frame_labels_ped2.npy (ped2.mat removed); (info, its path)."""
    info = fl.write_ped2_layout(tmp_path, n_test=n_test, n_frames=8)
    (info["dataset_dir"] / "ped2.mat").unlink()
    return info, info["dataset_dir"] / "frame_labels_ped2.npy"


@pytest.mark.parametrize("shape", ["(N,)", "(1, N)"])
def test_a_flat_label_array_is_split_by_the_test_videos_frame_counts(tmp_path, shape):
    info, path = _flat_ped2(tmp_path)
    flat = np.concatenate(list(info["labels"].values()))  # the videos' sorted order
    np.save(path, flat if shape == "(N,)" else flat[None, :].astype(np.uint8))
    files = find_dataset(tmp_path, "ped2")
    assert files.label_source == str(path) and files.notes.lines == []
    assert [len(v.labels) for v in files.test] == list(info["test_videos"].values())
    for video in files.test:
        np.testing.assert_array_equal(video.labels, info["labels"][video.name])


def test_a_flat_label_array_of_the_wrong_length_is_refused_with_the_counts(tmp_path):
    info, path = _flat_ped2(tmp_path)
    flat = np.concatenate(list(info["labels"].values()))
    np.save(path, flat[:-3])
    with pytest.raises(FFPError) as error:
        find_dataset(tmp_path, "ped2")
    counts = list(info["test_videos"].values())
    message = str(error.value)
    assert "\n" not in message and str(path) in message
    assert f"{len(flat) - 3} labels but the 3 test videos have {sum(counts)} frames" in message
    assert " + ".join(map(str, counts)) in message and "sorted order" in message


def test_mnad_shanghai_file_name_is_found_for_shanghaitech(tmp_path):
    info = fl.write_shanghaitech_layout(tmp_path, n_test=2, n_frames=8)
    flat = np.concatenate(list(info["labels"].values()))
    for path in info["label_files"]:
        path.unlink()
    (info["dataset_dir"] / "testing" / "test_frame_mask").rmdir()
    np.save(info["dataset_dir"] / "frame_labels_shanghai.npy", flat)
    files = find_dataset(tmp_path, "shanghaitech")
    assert files.label_source.endswith("frame_labels_shanghai.npy")
    for video in files.test:
        np.testing.assert_array_equal(video.labels, info["labels"][video.name])


def _real_ped2_copy(shared_data: Path, tmp_path: Path) -> Path:
    """A ped2 folder of links to the real frames and pixel masks, without the real label files."""
    ds = tmp_path / "ped2"
    (ds / "testing").mkdir(parents=True)
    (ds / "training").symlink_to(shared_data / "ped2" / "training")
    for part in ("frames", "UCSD_pixel_masks"):
        (ds / "testing" / part).symlink_to(shared_data / "ped2" / "testing" / part)
    return ds


def test_real_ped2_flat_labels_checked_against_its_pixel_masks(shared_data, tmp_path):
    """MNAD-style frame_labels_ped2.npy made from the real labels: it is used and agrees with the real masks;
    with video 04's labels flipped (1 = normal, as some exports store them) the masks' note names video 04."""
    real = find_dataset(shared_data, "ped2")
    assert real.notes.lines == []  # ped2.mat, UCSDped2.m and the masks agree on every frame
    flat = np.concatenate([v.labels for v in real.test])
    ds = _real_ped2_copy(shared_data, tmp_path)
    np.save(ds / "frame_labels_ped2.npy", flat)
    files = find_dataset(tmp_path, "ped2")
    assert files.label_source == str(ds / "frame_labels_ped2.npy") and files.notes.lines == []
    assert all(np.array_equal(a.labels, b.labels) for a, b in zip(files.test, real.test))
    four = real.test[3]
    start = sum(len(v.labels) for v in real.test[:3])
    flat[start : start + len(four.labels)] = 1 - four.labels
    np.save(ds / "frame_labels_ped2.npy", flat)
    notes = find_dataset(tmp_path, "ped2").notes.lines
    n = len(four.labels)  # every frame flipped
    assert notes == [f"from {ds / 'frame_labels_ped2.npy'}; pixel masks disagrees on video 04 ({n} of {n} frames)"]
