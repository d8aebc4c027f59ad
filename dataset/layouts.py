"""Finding a dataset on disk: the table of layouts, and the search that picks one and lists its videos.

A video is a folder of frames or a video file, in every layout. LAYOUTS (below) says, for each layout, where a
dataset folder <ds> keeps its training and test videos and where its frame labels and pixel masks are looked
for; layouts are tried in order and the first whose training split holds videos wins. Adding a layout is one
entry there, plus, for a new label format, its parser and LabelPlace in `labels`.
<ds> is <root>/<name> (also <root>/UCSD<name> and <root> itself for the built-in benchmarks, the datasets of
config.DATASET_DEFAULTS). Any other --dataset name is your own data at <root>/<name>/ (flat layout): training/
holds normal videos, testing/ is optional and its labels are optional. Label and mask folders are never taken
for videos.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from config import DATASET_DEFAULTS
from errors import FFPError

from .files import IMAGE_EXTS, is_junk, is_video_file, list_images, natural_key
from .folders import FrameFolder
from .labels import LABEL_PLACES, LabelPlace, attach_labels
from .masks import MASK_PLACES, MaskPlace, attach_masks
from .types import DatasetFiles, Video
from .videos import VideoFile


@dataclass(frozen=True)
class Layout:
    """One way a dataset folder <ds> is arranged.

    train, test: the training and test split folders, relative to <ds> ('/'-separated; a missing test folder
    means no test videos); labels: places tried for frame labels, in order (first found wins); masks: places
    tried for pixel masks (each found replaces the previous); about: whose data comes this way (documentation).
    Every built-in layout reads labels and masks from all places: datasets get re-packaged, and a label file is
    recognised by itself.
    """

    name: str
    train: str
    test: str
    about: str
    labels: tuple[LabelPlace, ...] = LABEL_PLACES
    masks: tuple[MaskPlace, ...] = MASK_PLACES


LAYOUTS: tuple[Layout, ...] = (
    Layout("frames", "training/frames", "testing/frames", "the FFP release of Ped1/Ped2/Avenue/ShanghaiTech"),
    Layout("shanghaitech", "training/videos", "testing/frames", "the official ShanghaiTech download (.avi training)"),
    Layout("avenue", "training_videos", "testing_videos", "the official CUHK Avenue download (NN.avi)"),
    Layout("flat", "training", "testing", "the FFP layout without frames/, and your own data"),
    Layout("ucsd", "Train", "Test", "the original UCSD release (Train001/, Test001/ of .tif)"),
)
BENCHMARKS = tuple(DATASET_DEFAULTS)  # the built-in datasets: also looked for in <root>/UCSD<name> and <root>


def _not_video_dirs() -> set[str]:
    """Lower-case names of split sub-folders that never hold videos: the layouts' own sub-splits (frames/,
    videos/), every label and mask folder of the layouts, and other folders datasets ship with."""
    sub_splits = {
        PurePosixPath(split).name
        for layout in LAYOUTS
        for split in (layout.train, layout.test)
        if len(PurePosixPath(split).parts) > 1
    }
    places = {name for layout in LAYOUTS for place in layout.labels + layout.masks for name in place.folders}
    return {name.lower() for name in sub_splits | places | {"pixel_masks", "labels", "masks", "__MACOSX"}}


NOT_VIDEO_DIRS = _not_video_dirs()


# ----------------------------------------------------------------------------------------------- splits
def _is_video_dir(path: Path) -> bool:
    return (
        path.is_dir()
        and not is_junk(path)
        and path.name.lower() not in NOT_VIDEO_DIRS
        and not path.name.endswith("_gt")
    )


def split_videos(split_dir: Path) -> list[Video]:
    """The videos of one split folder: its frame folders, or its video files, or the folder itself when it
    directly holds frames. FFPError for a folder that mixes files and frame folders or an empty video folder."""
    entries = sorted((p for p in split_dir.iterdir() if not is_junk(p)), key=natural_key)
    folders = [p for p in entries if _is_video_dir(p)]
    files = [p for p in entries if is_video_file(p) and not p.stem.endswith("_gt")]  # *_gt: mask videos
    if folders and files:
        raise FFPError(
            f"split folder {split_dir} mixes video files ({', '.join(p.name for p in files[:3])}) and "
            f"frame folders ({', '.join(p.name for p in folders[:3])}): keep one kind per folder"
        )
    if files:
        return [Video(p.stem, VideoFile(p)) for p in files]
    videos = []
    for folder in folders:
        frames = list_images(folder)
        if not frames:
            raise FFPError(f"video folder {folder} has no frames ({', '.join(IMAGE_EXTS)})")
        videos.append(Video(folder.name, FrameFolder(folder, frames)))
    if not videos and list_images(split_dir):
        videos.append(Video(split_dir.name, FrameFolder(split_dir)))
    return videos


def dataset_dirs(root: Path, name: str) -> list[Path]:
    """Folders that may hold dataset `name`: <root>/<name>, and for benchmarks <root>/UCSD<name> and <root>."""
    if name not in BENCHMARKS:
        return [root / name]
    return list(dict.fromkeys([root / name, root / f"UCSD{name}", root / f"UCSD{name.capitalize()}", root]))


def find_dataset(root: str | Path, name: str, with_labels: bool = True, split: str = "train") -> DatasetFiles:
    """Locate dataset `name` under `root`, list its videos and (with_labels) attach its test videos' pixel masks and
    frame labels, read and checked now (see `Layout`).

    split: the split the command needs, 'train' (training: the first layout whose training split holds videos) or
    'test' (evaluation: the first whose test split does; its training split may be missing or empty).
    Raises FFPError naming the folders looked in when nothing matches, and for any bad label or mask.
    """
    root = Path(root)
    if not root.is_dir():
        raise FFPError(f"--data_root {root} does not exist (expected a folder holding {name}/)")
    candidates = dataset_dirs(root, name)
    for dsdir in candidates:
        for layout in LAYOUTS:
            files = _videos_in(dsdir, layout, name, split)
            if files is None:
                continue
            if with_labels and files.test:
                attach_masks(files.root, files.test, layout.masks)
                attach_labels(files, layout.labels)
            return files
    raise _not_found(root, name, candidates, split)


def _videos_in(dsdir: Path, layout: Layout, name: str, split: str) -> DatasetFiles | None:
    """The videos of `dsdir` read as `layout`, or None when its `split` ('train' or 'test') is missing or holds no
    videos. Training also lists the test videos (for validation; there may be none); evaluation never looks at the
    training split."""
    dirs = {"train": dsdir / layout.train, "test": dsdir / layout.test}
    if not dirs[split].is_dir():
        return None
    wanted = ("train", "test") if split == "train" else ("test",)
    videos = {s: split_videos(d) if s in wanted and d.is_dir() else [] for s, d in dirs.items()}
    if not videos[split]:
        return None
    return DatasetFiles(name, dsdir, layout.name, videos["train"], videos["test"])


def _looked_in(split: str) -> str:
    """Where a split's videos are looked for, from LAYOUTS grouped by their first folder, e.g. for 'train':
    '<dir>/training[/frames|/videos]/, <dir>/training_videos/ or <dir>/Train/'."""
    groups: dict[str, list[str]] = {}
    for layout in LAYOUTS:
        first, *rest = (layout.train if split == "train" else layout.test).split("/")
        subs = groups.setdefault(first, [])
        subs += [] if not rest or "/" + "/".join(rest) in subs else ["/" + "/".join(rest)]
    texts = [f"<dir>/{first}" + (f"[{'|'.join(subs)}]" if subs else "") + "/" for first, subs in groups.items()]
    return " or ".join(texts) if len(texts) < 2 else f"{', '.join(texts[:-1])} or {texts[-1]}"


def _not_found(root: Path, name: str, candidates: list[Path], split: str) -> FFPError:
    """The error for a dataset whose `split` videos were found in none of `candidates`."""
    folder, what = ("training", "training") if split == "train" else ("testing", "test")
    if name not in BENCHMARKS:
        return FFPError(
            f"dataset {name!r} is not a built-in benchmark ({', '.join(BENCHMARKS)}), so it is read as "
            f"your own data from {root / name}/{folder}/ (a folder of video files or frame folders), "
            f"which {'holds no videos' if (root / name / folder).is_dir() else 'does not exist'}"
        )
    return FFPError(
        f"dataset {name!r} not found under {root}: looked for {what} videos (frame folders or "
        f"video files) in {_looked_in(split)} with <dir> one of {', '.join(map(str, candidates))}"
    )
