"""One grammar for every duration a flag takes: a number and an optional unit.

    '400', '400f', '400 frames'           frames (where a flag counts frames; bare numbers are frames there)
    '40s', '40 sec', '40 seconds'         seconds
    '30m', '30 min', '8h', '8 hours'      minutes and hours, as seconds

Flags: --train_until and --start (a point in a video, frames or seconds, > 0), --event_gap and --min_event (frames
or seconds, ≥ 0; converted with the input's frame rate), --duration (a live run's wall-clock length, > 0; a bare
number is seconds). Torch-free: detect.py checks its flags with it before torch loads.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from errors import FFPError

_UNITS = {
    "f": ("frames", 1.0),
    "frame": ("frames", 1.0),
    "frames": ("frames", 1.0),
    "s": ("s", 1.0),
    "sec": ("s", 1.0),
    "secs": ("s", 1.0),
    "second": ("s", 1.0),
    "seconds": ("s", 1.0),
    "m": ("s", 60.0),
    "min": ("s", 60.0),
    "mins": ("s", 60.0),
    "minute": ("s", 60.0),
    "minutes": ("s", 60.0),
    "h": ("s", 3600.0),
    "hour": ("s", 3600.0),
    "hours": ("s", 3600.0),
}
_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Duration:
    """A parsed duration: `value` in `unit`, 'frames' (a whole number) or 's' (minutes and hours converted)."""

    value: float
    unit: str

    def frames(self, fps: float) -> int:
        """In frames at `fps` (> 0) frames/s: seconds × fps rounded half up (0.5 s at 25 fps = 13 frames)."""
        return int(self.value) if self.unit == "frames" else int(math.floor(self.value * fps + 0.5))


def parse_duration(text: str, flag: str, *, bare: str = "frames", zero: bool = False) -> Duration:
    """`text` of `flag` in the grammar above. bare: the unit of a bare number, 'frames' or 's' (then frames are
    refused); zero: whether 0 is allowed. FFPError naming the flag and what it takes for anything else (negative,
    empty, another unit, a fraction of a frame)."""
    match = _DURATION.fullmatch(str(text))
    unit, scale = _UNITS.get(match.group(2).lower(), (None, 0.0)) if match and match.group(2) else (bare, 1.0)
    value = float(match.group(1)) * scale if match else math.nan
    if unit is None or (bare == "s" and unit == "frames") or not (value > 0 or (zero and value == 0)):
        raise FFPError(f"{flag} must be {_expected(bare, zero)}, got {text!r}")
    if unit == "frames" and value != int(value):
        raise FFPError(f"{flag} must be a whole number of frames or a time in seconds ('0.5s'), got {text!r}")
    return Duration(value, unit)


def _expected(bare: str, zero: bool) -> str:
    if bare == "s":
        return f"{'0 or a' if zero else 'a positive'} duration ('90s', '30m', '8h')"
    amount = "0 or more" if zero else "a positive number of"
    return f"{amount} frames ('5', '5f') or seconds ('0.5s', '2m')"
