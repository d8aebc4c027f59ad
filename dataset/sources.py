"""Where a video's frames come from: a folder of images or a video file, behind one interface.

    source = open_source(Path("training/01"))        # FrameFolder
    source = open_source(Path("training/01_001.avi")) # VideoFile (anything FFmpeg decodes, through PyAV)
    len(source); source.numbers(); source.frames(height, width) -> (number, H×W×3 uint8 RGB) in order
    source.report().problems()                        # missing frames, uncertain numbers, an early end

Frames get one preprocessing whatever their origin (`preprocess`: RGB, resized to the config size).
Frame numbers are true to the source, one rule for files and folders: a frame's number is its place among the
frames the source lists, so a missing frame leaves a gap and the frames after it keep their numbers. A folder's
numbers are the numbers in its file names (`folders.number_files`); a video file's come from the container's index (AVI)
or packet timestamps (`container_index`), never from counting decoded frames, so an intact file of variable frame rate
is numbered 0..n-1 and a damaged one keeps true numbers after the damage. Where no number can be known the range
is reported as uncertain (`DecodeReport.uncertain`). Video files are counted by DECODING them, never by the
container's frame count (headers lie: OpenCV's sample tree.avi declares 444 frames and 68 decode).
"""

from __future__ import annotations

from pathlib import Path

from errors import FFPError

from .files import VIDEO_EXTS, is_video_file
from .folders import FrameFolder
from .videos import VideoFile

FrameSource = FrameFolder | VideoFile


def open_source(path: Path) -> FrameSource:
    """A FrameFolder for a folder, a VideoFile for a file with a video extension; FFPError otherwise."""
    path = Path(path)
    if path.is_dir():
        return FrameFolder(path)
    if is_video_file(path):
        return VideoFile(path)
    if not path.exists():
        raise FFPError(f"{path} does not exist (expected a video file or a folder of frames)")
    raise FFPError(f"{path} is neither a folder of frames nor a video file ({', '.join(VIDEO_EXTS[:8])}, …)")
