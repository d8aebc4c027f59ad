"""Tiny fake datasets in every real on-disk layout the loaders must read, for loader tests.

Every writer returns the same kind of dict describing exactly what it wrote:
    dataset_dir:  Path of the dataset folder
    train_videos: {video name: frame count}, in sorted name order
    test_videos:  {video name: frame count}, in sorted name order
    labels:       {test video name: (n_frames,) int64 0/1 array, 1 = abnormal frame}
    frame_size:   (H, W) of every frame and mask
    label_files:  [Path] files holding the labels (.mat / .npy / .m / mask images)
    files:        [Path] every file written (frames and label files)

Video i (0-based) of a split has n_frames + i frames, so a loader that mixes up videos shows it. Frame j of any
video has mean grey level ~ frame_mean(j) (a gradient +-20 around it, plus small noise), so frame order can be
checked after JPEG compression. Content is deterministic (np.random.default_rng(seed)).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import scipy.io


def intervals_to_labels(intervals: np.ndarray, n_frames: int) -> np.ndarray:
    """(2, K) or (2,) 1-based inclusive intervals -> (n_frames,) int64 0/1 labels."""
    iv = np.asarray(intervals, dtype=np.int64).reshape(2, -1)
    labels = np.zeros(n_frames, dtype=np.int64)
    for start, end in iv.T:
        labels[start - 1 : end] = 1
    return labels


FAKE_FRAME_SIZE = (24, 36)  # (H, W)


def frame_mean(index: int) -> float:
    """Expected mean grey level (0..255) of 0-based frame `index` in every fake video; steps of 6 levels."""
    return 40.0 + 6.0 * (index % 30)


def fake_intervals(video_index: int, n_frames: int) -> np.ndarray:
    """Abnormal intervals (2, K) int, 1-based inclusive, of 0-based test video `video_index`: even videos get one
    interval (2x1, which loadmat(squeeze_me=True) squeezes to (2,)), odd ones two (2x2). Needs n_frames >= 6."""
    if n_frames < 6:
        raise ValueError(f"fake test video needs >= 6 frames for its intervals, got {n_frames}")
    if video_index % 2 == 0:
        return np.array([[n_frames // 4 + 1], [n_frames // 2 + 1]])
    return np.array([[2, n_frames - 2], [3, n_frames]])


def _frame(rng: np.random.Generator, index: int, color: bool) -> np.ndarray:
    """(H, W, 3) or (H, W) uint8 frame: horizontal gradient around frame_mean(index) plus noise."""
    h, w = FAKE_FRAME_SIZE
    grey = frame_mean(index) + np.linspace(-20.0, 20.0, w)[None, :] + rng.normal(0.0, 3.0, (h, w))
    if color:  # slightly different channels, as real colour footage would have
        grey = grey[..., None] + np.array([-5.0, 0.0, 5.0])
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8)


def _mask(labels_value: int, index: int) -> np.ndarray:
    """(H, W) uint8 pixel mask: a small rectangle of 1s (moving with the frame index) if abnormal, else zeros."""
    h, w = FAKE_FRAME_SIZE
    mask = np.zeros((h, w), dtype=np.uint8)
    if labels_value:
        x = index % (w - 6)
        mask[8:14, x : x + 6] = 1
    return mask


def _imwrite(path: Path, image: np.ndarray) -> Path:
    """Write an image (format from the suffix), creating folders; returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"cv2 could not write {path}")
    return path


def _write_videos(
    split_dir: Path,
    names: list[str],
    n_frames: int,
    pattern: str,
    rng: np.random.Generator,
    color: bool = True,
    first: int = 0,
) -> tuple[dict[str, int], list[Path]]:
    """Write video i of `names` with n_frames + i frames; frame j goes to `split_dir/<name>/pattern.format(j + first)`
    (first=1 for 1-based names). Returns ({name: frame count}, written paths)."""
    counts, files = {}, []
    for i, name in enumerate(names):
        counts[name] = n_frames + i
        files += [
            _imwrite(split_dir / name / pattern.format(j + first), _frame(rng, j, color)) for j in range(counts[name])
        ]
    return counts, files


def _result(
    dataset_dir: Path, train: dict, test: dict, labels: dict, label_files: list[Path], frame_files: list[Path]
) -> dict:
    """The dict every writer returns (see the module docstring)."""
    return {
        "dataset_dir": dataset_dir,
        "train_videos": train,
        "test_videos": test,
        "labels": labels,
        "frame_size": FAKE_FRAME_SIZE,
        "label_files": label_files,
        "files": frame_files + label_files,
    }


def _test_labels(test: dict[str, int]) -> dict[str, np.ndarray]:
    """Labels of every test video, from fake_intervals."""
    return {name: intervals_to_labels(fake_intervals(i, n), n) for i, (name, n) in enumerate(test.items())}


def write_ped2_layout(
    root: str | os.PathLike,
    name: str = "ped2",
    with_frames_level: bool = True,
    n_train: int = 2,
    n_test: int = 2,
    n_frames: int = 8,
    seed: int = 0,
) -> dict:
    """FFP-style Ped2: <root>/<name>/{training,testing}[/frames]/<NN>/<NNN>.jpg (0-based) and
    <root>/<name>/<name>.mat holding `gt`, a 1 x n_test cell of 2xK uint16 1-based inclusive intervals."""
    rng = np.random.default_rng(seed)
    dataset = Path(root) / name
    sub = ("frames",) if with_frames_level else ()
    train, train_files = _write_videos(
        dataset.joinpath("training", *sub), [f"{i + 1:02d}" for i in range(n_train)], n_frames, "{:03d}.jpg", rng
    )
    test, test_files = _write_videos(
        dataset.joinpath("testing", *sub), [f"{i + 1:02d}" for i in range(n_test)], n_frames, "{:03d}.jpg", rng
    )
    gt = np.empty(n_test, dtype=object)
    for i, n in enumerate(test.values()):
        gt[i] = fake_intervals(i, n).astype(np.uint16)
    mat = dataset / f"{name}.mat"
    scipy.io.savemat(str(mat), {"gt": gt})
    return _result(dataset, train, test, _test_labels(test), [mat], train_files + test_files)


def set_gt(info: dict, entries: list) -> Path:
    """Replace a written fake ped2's ped2.mat `gt` cell with `entries` (one per test video)."""
    gt = np.empty(len(entries), dtype=object)
    for i, entry in enumerate(entries):
        gt[i] = np.asarray(entry)
    path = info["dataset_dir"] / "ped2.mat"
    scipy.io.savemat(str(path), {"gt": gt})
    return path


def write_shanghaitech_layout(
    root: str | os.PathLike, n_train: int = 2, n_test: int = 2, n_frames: int = 8, seed: int = 0
) -> dict:
    """ShanghaiTech: <root>/shanghaitech/{training,testing}/frames/<video>/<NNN>.jpg with training videos named
    like 01_001 and test videos like 01_0014, and testing/test_frame_mask/<video>.npy (int64 0/1 per frame)."""
    rng = np.random.default_rng(seed)
    dataset = Path(root) / "shanghaitech"
    train_names = [f"{i % 13 + 1:02d}_{i // 13 + 1:03d}" for i in range(n_train)]
    test_names = [f"{i % 2 + 1:02d}_{i + 14:04d}" for i in range(n_test)]
    train, train_files = _write_videos(dataset / "training" / "frames", train_names, n_frames, "{:03d}.jpg", rng)
    test, test_files = _write_videos(dataset / "testing" / "frames", test_names, n_frames, "{:03d}.jpg", rng)
    labels = _test_labels(test)
    label_files = []
    for video, video_labels in labels.items():
        path = dataset / "testing" / "test_frame_mask" / f"{video}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, video_labels)
        label_files.append(path)
    return _result(
        dataset,
        dict(sorted(train.items())),
        dict(sorted(test.items())),
        dict(sorted(labels.items())),
        label_files,
        train_files + test_files,
    )


def write_avenue_layout(
    root: str | os.PathLike, n_train: int = 2, n_test: int = 2, n_frames: int = 8, seed: int = 0
) -> dict:
    """CUHK Avenue: <root>/avenue/{training,testing}/frames/<NN>/<NNNN>.jpg (0-based, four digits as in the
    FFP release) and <root>/avenue/testing_label_mask/<N>_label.mat (N 1-based, unpadded) holding `volLabel`,
    a 1 x n_frames cell of HxW uint8 masks; a frame is abnormal iff its mask has a nonzero pixel."""
    rng = np.random.default_rng(seed)
    dataset = Path(root) / "avenue"
    train, train_files = _write_videos(
        dataset / "training" / "frames", [f"{i + 1:02d}" for i in range(n_train)], n_frames, "{:04d}.jpg", rng
    )
    test, test_files = _write_videos(
        dataset / "testing" / "frames", [f"{i + 1:02d}" for i in range(n_test)], n_frames, "{:04d}.jpg", rng
    )
    labels = _test_labels(test)
    label_files = []
    for i, video_labels in enumerate(labels.values()):
        vol = np.empty((1, len(video_labels)), dtype=object)
        for j, value in enumerate(video_labels):
            vol[0, j] = _mask(value, j)
        path = dataset / "testing_label_mask" / f"{i + 1}_label.mat"
        path.parent.mkdir(parents=True, exist_ok=True)
        scipy.io.savemat(str(path), {"volLabel": vol})
        label_files.append(path)
    return _result(dataset, train, test, labels, label_files, train_files + test_files)


def _m_file_text(test: dict[str, int]) -> str:
    """The UCSD `<name>.m` label script: one `TestVideoFile{end+1}.gt_frame = [a:b, c:d];` line per test video."""
    lines = ["% ground truth for the test videos (1-based, inclusive)", "TestVideoFile = {};", ""]
    for i, n in enumerate(test.values()):
        ranges = ", ".join(f"{s}:{e}" for s, e in fake_intervals(i, n).T)
        lines.append(f"TestVideoFile{{end+1}}.gt_frame = [{ranges}];")
    return "\n".join(lines) + "\n"


def _write_mask_folders(test_dir: Path, labels: dict[str, np.ndarray], mask_ext: str) -> list[Path]:
    """TestNNN_gt/<NNN>.<mask_ext> masks (0/255); the last folder (when there are >= 2) uses the real release's
    quirky `frameNNN.<ext>` names."""
    files = []
    for i, (video, video_labels) in enumerate(labels.items()):
        prefix = "frame" if len(labels) >= 2 and i == len(labels) - 1 else ""
        for j, value in enumerate(video_labels):
            path = test_dir / f"{video}_gt" / f"{prefix}{j + 1:03d}.{mask_ext}"
            files.append(_imwrite(path, _mask(value, j) * np.uint8(255)))
    return files


def write_ucsd_original_layout(
    root: str | os.PathLike,
    name: str = "UCSDped2",
    mask_ext: str = "bmp",
    use_m_file: bool = True,
    n_train: int = 2,
    n_test: int = 2,
    n_frames: int = 8,
    seed: int = 0,
) -> dict:
    """The original UCSD release: <root>/<name>/Train/TrainNNN/NNN.tif and Test/TestNNN/NNN.tif (1-based,
    single-channel grey TIFF). Labels from Test/<name>.m when use_m_file, else from Test/TestNNN_gt/NNN.<mask_ext>
    masks (mask_ext 'bmp' or 'png'; 0/255; one folder named frameNNN.<ext>)."""
    if mask_ext not in ("bmp", "png"):
        raise ValueError(f"mask_ext={mask_ext!r}: expected 'bmp' or 'png'")
    rng = np.random.default_rng(seed)
    dataset = Path(root) / name
    # 1-based frame names, unlike the FFP layouts
    train, train_files = _write_videos(
        dataset / "Train",
        [f"Train{i + 1:03d}" for i in range(n_train)],
        n_frames,
        "{:03d}.tif",
        rng,
        color=False,
        first=1,
    )
    test, test_files = _write_videos(
        dataset / "Test", [f"Test{i + 1:03d}" for i in range(n_test)], n_frames, "{:03d}.tif", rng, color=False, first=1
    )
    labels = _test_labels(test)
    if use_m_file:
        m_file = dataset / "Test" / f"{name}.m"
        m_file.write_text(_m_file_text(test), encoding="utf-8")
        label_files = [m_file]
    else:
        label_files = _write_mask_folders(dataset / "Test", labels, mask_ext)
    result = _result(dataset, train, test, labels, label_files, train_files + test_files)
    result["label_source"] = "m_file" if use_m_file else "masks"
    return result


# ------------------------------------------------------------------------------------------ video files
def write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    """Write H×W×3 (or H×W grey) uint8 frames as a video file with OpenCV: MJPG for .avi, mp4v for .mp4."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    fourcc = "MJPG" if path.suffix.lower() == ".avi" else "mp4v"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write {path} ({fourcc})")
    for frame in frames:
        writer.write(frame if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


def video_frames(n: int, seed: int = 0, real: Path | None = None) -> list[np.ndarray]:
    """n frames for a fake video: real UCSD Ped2 frames (`real`: a frame folder, e.g. ../shared Test001,
    with frame j's grey level shifted by frame_mean(j) - 100 so order stays checkable) when given, else the
    gradient frames of this module. Either way frame j has mean grey level ~ frame_mean(j)."""
    rng = np.random.default_rng(seed)
    if real is None:
        return [_frame(rng, j, color=True) for j in range(n)]
    files = sorted(real.glob("*.jpg"))
    frames = []
    for j in range(n):
        grey = cv2.imread(str(files[j % len(files)]), cv2.IMREAD_GRAYSCALE).astype(np.float64)
        grey = cv2.resize(grey, (FAKE_FRAME_SIZE[1], FAKE_FRAME_SIZE[0]), interpolation=cv2.INTER_AREA)
        grey = grey - grey.mean() + frame_mean(j)
        frames.append(cv2.cvtColor(np.clip(np.rint(grey), 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR))
    return frames


def _avenue_label_mat(path: Path, labels: np.ndarray) -> Path:
    vol = np.empty((1, len(labels)), dtype=object)
    for j, value in enumerate(labels):
        vol[0, j] = _mask(value, j)
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(str(path), {"volLabel": vol})
    return path


def write_official_avenue(
    root: str | os.PathLike,
    n_train: int = 2,
    n_test: int = 2,
    n_frames: int = 8,
    real: Path | None = None,
    ground_truth_demo: bool = True,
) -> dict:
    """The CUHK Avenue download as it unpacks: avenue/training_videos/NN.avi, avenue/testing_videos/NN.avi and
    avenue/ground_truth_demo/testing_label_mask/<N>_label.mat (`volLabel` masks; without ground_truth_demo/ when
    `ground_truth_demo` is False). Video i has n_frames + i frames (MJPG)."""
    dataset = Path(root) / "avenue"
    train = {f"{i + 1:02d}": n_frames + i for i in range(n_train)}
    test = {f"{i + 1:02d}": n_frames + i for i in range(n_test)}
    files = [
        write_video(dataset / "training_videos" / f"{v}.avi", video_frames(n, i, real))
        for i, (v, n) in enumerate(train.items())
    ]
    files += [
        write_video(dataset / "testing_videos" / f"{v}.avi", video_frames(n, 10 + i, real))
        for i, (v, n) in enumerate(test.items())
    ]
    labels = _test_labels(test)
    label_dir = (
        dataset / "ground_truth_demo" / "testing_label_mask" if ground_truth_demo else dataset / "testing_label_mask"
    )
    label_files = [_avenue_label_mat(label_dir / f"{i + 1}_label.mat", lab) for i, lab in enumerate(labels.values())]
    return _result(dataset, train, test, labels, label_files, files)


def write_official_shanghaitech(
    root: str | os.PathLike,
    n_train: int = 2,
    n_test: int = 2,
    n_frames: int = 8,
    real: Path | None = None,
    pixel_masks: bool = True,
) -> dict:
    """The ShanghaiTech Campus download as it unpacks: shanghaitech/training/videos/01_00N.avi, test frames in
    testing/frames/<video>/NNN.jpg, testing/test_frame_mask/<video>.npy (0/1 per frame) and, with
    `pixel_masks`, testing/test_pixel_mask/<video>.npy (n_frames×H×W 0/1)."""
    dataset = Path(root) / "shanghaitech"
    train = {f"01_{i + 1:03d}": n_frames + i for i in range(n_train)}
    files = [
        write_video(dataset / "training" / "videos" / f"{v}.avi", video_frames(n, i, real))
        for i, (v, n) in enumerate(train.items())
    ]
    test, test_files = _write_videos(
        dataset / "testing" / "frames",
        [f"01_{i + 14:04d}" for i in range(n_test)],
        n_frames,
        "{:03d}.jpg",
        np.random.default_rng(5),
    )
    labels = _test_labels(test)
    label_files = []
    for video, video_labels in labels.items():
        label_files.append(dataset / "testing" / "test_frame_mask" / f"{video}.npy")
        label_files[-1].parent.mkdir(parents=True, exist_ok=True)
        np.save(label_files[-1], video_labels)
        if pixel_masks:
            label_files.append(dataset / "testing" / "test_pixel_mask" / f"{video}.npy")
            label_files[-1].parent.mkdir(parents=True, exist_ok=True)
            np.save(label_files[-1], np.stack([_mask(v, j) for j, v in enumerate(video_labels)]))
    return _result(dataset, train, test, labels, label_files, files + test_files)


def write_custom(
    root: str | os.PathLike,
    name: str = "mycam",
    train: dict[str, int] | None = None,
    test: dict[str, int] | None = None,
    real: Path | None = None,
) -> dict:
    """Someone's own footage: <root>/<name>/training/<file> video files ({file name: frames}), and optionally
    testing/<file> ones, no labels."""
    dataset = Path(root) / name
    train = train or {"monday.avi": 12, "tuesday.mp4": 10}
    files = [write_video(dataset / "training" / f, video_frames(n, i, real)) for i, (f, n) in enumerate(train.items())]
    files += [
        write_video(dataset / "testing" / f, video_frames(n, 20 + i, real))
        for i, (f, n) in enumerate((test or {}).items())
    ]
    return {
        "dataset_dir": dataset,
        "train_videos": {Path(f).stem: n for f, n in train.items()},
        "test_videos": {Path(f).stem: n for f, n in (test or {}).items()},
        "files": files,
    }


# ------------------------------------------------------------------------------------------ frame numbers
def distinct_frame(index: int) -> np.ndarray:
    """(H, W, 3) uint8 frame whose mean grey level is 20 + 1.2 × (index % 180): frame numbers up to 179 stay
    recognisable after lossy coding (neighbours differ by 1.2 levels, a jump of 5 numbers by 6). Seeded noise keeps
    coded frames from shrinking to a few bytes, as real footage does."""
    h, w = FAKE_FRAME_SIZE
    noise = np.random.default_rng(index).normal(0.0, 4.0, (h, w))
    grey = 20.0 + 1.2 * (index % 180) + np.linspace(-10.0, 10.0, w)[None, :] + noise
    return np.repeat(np.clip(np.rint(grey), 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def write_frame_folder(folder: Path, numbers, pattern: str = "{:03d}.jpg") -> list[Path]:
    """A frame folder holding one file per file number in `numbers` (e.g. 1..180 without 60..69), named by
    `pattern`; the file numbered k shows distinct_frame(k). Returns the written paths."""
    return [_imwrite(folder / pattern.format(k), distinct_frame(k)) for k in numbers]


def write_vfr_mp4(path: Path, n: int = 180, slow: tuple[int, int] = (60, 120)) -> tuple[Path, np.ndarray]:
    """A phone-style variable-frame-rate video written with PyAV (MPEG-4 part 2; the container from the suffix:
    .mp4, .mkv, …): frames 30 fps, except frames slow[0]..slow[1]-1 which follow each other at 15 fps (low light;
    slow=(0, 0): constant 30 fps); frame j shows distinct_frame(j). Returns the path and the (n,) float64
    presentation times in seconds."""
    ticks = np.concatenate([[0], np.cumsum([2 if slow[0] <= j < slow[1] else 1 for j in range(n - 1)])])
    return write_timed_video(path, ticks, 30), ticks / 30.0


def write_timed_video(path: Path, ticks, rate: int, frames: list[np.ndarray] | None = None) -> Path:
    """A video (MPEG-4 part 2 through PyAV; the container from the suffix) whose frame j is shown at ticks[j] / rate
    seconds: non-decreasing ticks, so a jump is a hole in time (frames a recorder dropped) and a repeat is two frames
    with one timestamp. frames: H×W×3 uint8 RGB pictures (default: distinct_frame(j) at FAKE_FRAME_SIZE)."""
    import fractions

    import av

    pictures = frames if frames is not None else [distinct_frame(j) for j in range(len(ticks))]
    path.parent.mkdir(parents=True, exist_ok=True)
    time_base = fractions.Fraction(1, rate)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=rate)
        stream.height, stream.width = pictures[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = time_base

        def mux(packets) -> None:  # the encoder wants increasing times: give each packet its tick afterwards
            for packet in packets:
                packet.pts = packet.dts = int(ticks[packet.pts])
                container.mux(packet)

        for j, picture in enumerate(pictures):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts, frame.time_base = j, time_base
            mux(stream.encode(frame))
        mux(stream.encode())
    return path


def zero_bytes(src: Path, dst: Path, start: float, end: float) -> Path:
    """A copy of `src` at `dst` with bytes from fraction `start` to `end` of its size zeroed (damaged storage)."""
    data = bytearray(src.read_bytes())
    a, b = int(len(data) * start), int(len(data) * end)
    data[a:b] = bytes(b - a)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(bytes(data))
    return dst


def drop_avi_index(path: Path) -> Path:
    """The AVI at `path` without its idx1 index (the chunk renamed JUNK, as a file whose index was lost)."""
    data = bytearray(path.read_bytes())
    at = data.rfind(b"idx1")
    data[at : at + 4] = b"JUNK"
    path.write_bytes(bytes(data))
    return path
