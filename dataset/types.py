"""The dataset's records: a video with its labels and masks, everything found for a dataset, and the interfaces of
frame and mask sources. The modules that find (`layouts`), label (`labels`) and mask (`masks`) videos all build on
these, so none of them imports another's types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, cast

import numpy as np

from errors import FFPError

from .sources import FrameSource


class MaskSource(Protocol):
    """Pixel masks of one test video, one per frame number (`masks.MaskImages`, `MaskArray`, `MaskVideo`).

    where: the mask file or folder (for messages); small: whether reading them all is cheap (compared with other
    labels only then)."""

    where: Path
    small: bool

    def __len__(self) -> int: ...

    def read(self, index: int, size: tuple[int, int] | None = None) -> np.ndarray:
        """Mask of frame `index` as H×W bool (True = abnormal), nearest-neighbour resized to size=(H, W)."""
        ...


@dataclass
class LabelNotes:
    """Readings worth telling the user once (printed at start by the CLIs), e.g. 0/255 labels, 2×2 intervals."""

    lines: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        """Record one note (a repeated note is kept once)."""
        if text not in self.lines:
            self.lines.append(text)


@dataclass
class Video:
    """One video: where its frames come from, and for test videos its 0/1 frame labels and pixel masks."""

    name: str
    source: FrameSource
    labels: np.ndarray | None = None  # (frame_span(),) int64 0/1 indexed by frame number, or None (unlabelled)
    masks: MaskSource | None = None  # one pixel mask per frame number (frame_span() of them), or None

    def __len__(self) -> int:
        return len(self.source)

    def frame_span(self) -> int:
        """Frames the video's numbering covers, its highest frame number + 1: len(self) for a video without gaps,
        more when frames are missing (a folder's missing files, a file's damaged frames). Its labels and masks
        count this many, and are indexed by frame number."""
        numbers = self.source.numbers()
        return int(numbers[-1]) + 1 if len(numbers) else 0

    @property
    def where(self) -> str:
        """'video folder <path>' or 'video file <path>', for messages."""
        return f"{self.source.kind} {self.source.path}"

    def head(self, n: int) -> Video:
        """The same video cut to its frames numbered below n (labels cut alike)."""
        source = self.source.head(n)
        return Video(self.name, source, None if self.labels is None else self.labels[:n], self.masks)


@dataclass
class DatasetFiles:
    """Everything found on disk for one dataset. `label_source` says where test labels came from ('' = none)."""

    name: str
    root: Path
    layout: str
    train: list[Video] = field(default_factory=list)
    test: list[Video] = field(default_factory=list)
    label_source: str = ""
    notes: LabelNotes = field(default_factory=LabelNotes)

    @property
    def labelled(self) -> bool:
        """Every test video has labels (there is at least one test video)."""
        return bool(self.test) and all(v.labels is not None for v in self.test)

    def why_no_auc(self, in_frames: int) -> str | None:
        """Why no frame-level AUC can be computed on the test videos (None when it can): no test videos, no frame
        labels, or one class only among the scored frames (the first `in_frames` of each video are not scored)."""
        if not self.test:
            return f"{self.name} has no test videos"
        if not self.labelled:
            return f"no frame labels were found for the test videos of {self.name} in {self.root}"
        values = np.concatenate(list(scored_labels(self.test, in_frames).values()))
        if values.size == 0 or values.min() == values.max():
            return (
                f"every scored test frame of {self.name} is labelled "
                f"{'abnormal' if values.size and values[0] else 'normal'}"
            )
        return None


def scored_labels(videos: list[Video], in_frames: int) -> dict[str, np.ndarray]:
    """{name: (N,) int64 labels of the predicted frames, paired BY FRAME NUMBER}: the predicted frames are a video's
    frames after its first `in_frames` (which have no prediction), and the label of a frame is its labels entry at
    its frame number, so frames after missing ones get their own labels, never their neighbours' (callers pass
    labelled videos). FFPError naming the video when its numbers cannot be paired (see `labels_by_number`)."""
    return {v.name: labels_by_number(v, v.source.numbers()[in_frames:]) for v in videos}


def labels_by_number(video: Video, numbers: np.ndarray) -> np.ndarray:
    """(N,) int64 labels of `video`'s frames numbered `numbers` ((N,) int64): its labels at those numbers.

    FFPError naming the video when a number is uncertain (decode order after damaged data: pairing it would be a
    guess) or has no label (the labels end before it)."""
    labels = cast(np.ndarray, video.labels)
    uncertain = video.source.report().uncertain
    if uncertain:
        shown = ", ".join(f"{a}-{b}" for a, b in uncertain[:3])
        raise FFPError(
            f"test video {video.name} ({video.where}): frame numbers uncertain for frames {shown} (damaged data), "
            f"so its {len(labels)} labels cannot be paired with its frames; re-encode or replace the file "
            f"(detect.py scores what decodes)"
        )
    if len(numbers) and int(numbers[-1]) >= len(labels):
        raise FFPError(
            f"test video {video.name} ({video.where}): frame {int(numbers[-1])} has no label (its labels cover "
            f"frames 0-{len(labels) - 1}); labels are paired with frames by frame number, never by position"
        )
    return labels[np.asarray(numbers, dtype=np.int64)]
