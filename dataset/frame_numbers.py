"""Frame numbers shared by folders and video files: where frames are missing, and ranges of them for messages."""

from __future__ import annotations

import numpy as np


def ranges_text(pairs: list[tuple[int, int]], shown: int = 5) -> str:
    """'60-69, 75, …': inclusive (first, last) ranges for messages, the first `shown` of them."""
    text = ", ".join(f"{a}-{b}" if b > a else f"{a}" for a, b in pairs[:shown])
    return text + (" …" if len(pairs) > shown else "")


def gap_limit(numbers: np.ndarray) -> float:
    """Smallest jump between consecutive frame numbers that means frames are missing: max(2, 2 × the median step).

    Frame numbers of files and folders step by 1, so this is 2 (one missing frame is a gap); the median keeps
    sparse numberings of other origins (a live source's clock) from reporting every step as a gap.
    """
    steps = np.diff(np.asarray(numbers))
    return max(2.0, 2.0 * float(np.median(steps))) if len(steps) else 2.0


def gaps_after(numbers: np.ndarray) -> np.ndarray:
    """Indices i such that frames are missing between numbers[i] and numbers[i + 1] (a jump ≥ `gap_limit`)."""
    numbers = np.asarray(numbers)
    return np.flatnonzero(np.diff(numbers) >= gap_limit(numbers))
