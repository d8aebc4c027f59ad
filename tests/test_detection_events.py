"""detection.events: alarm frames merged into events, and the --event_gap / --min_event values."""

from __future__ import annotations

import numpy as np
import pytest

from detection.events import Event, events_line, merge_events
from durations import parse_duration
from errors import FFPError


def alarms_at(frames, alarm_frames, high: float = 1.0) -> np.ndarray:
    """Scores of `frames`: `high` on the frame numbers in `alarm_frames`, 0 elsewhere."""
    return np.where(np.isin(frames, list(alarm_frames)), high, 0.0)


def spans(events: list[Event]) -> list[tuple[int, int]]:
    return [(e.first_frame, e.last_frame) for e in events]


FRAMES = np.arange(100)
# Runs 10-12 and 15-17 (2 frames apart), a lone 30, and 40-49 (10 frames after 30).
ALARMS = [10, 11, 12, 15, 16, 17, 30, *range(40, 50)]


def test_gap_zero_and_min_one_are_the_plain_runs():
    events = merge_events(FRAMES, alarms_at(FRAMES, ALARMS), 0.5, 10.0, 0, 1)
    assert spans(events) == [(10, 12), (15, 17), (30, 30), (40, 49)]
    assert [e.n_alarm_frames for e in events] == [3, 3, 1, 10]


def test_runs_separated_by_at_most_the_gap_merge():
    scores = alarms_at(FRAMES, ALARMS)
    # 13 and 14 lie between 12 and 15: a gap of 2 frames merges at gap_frames 2, not at 1.
    assert spans(merge_events(FRAMES, scores, 0.5, 10.0, 1, 1))[:2] == [(10, 12), (15, 17)]
    merged = merge_events(FRAMES, scores, 0.5, 10.0, 2, 1)
    assert spans(merged) == [(10, 17), (30, 30), (40, 49)]
    assert merged[0].n_alarm_frames == 6 and merged[0].n_frames == 8  # the dip 13-14 is spanned, not counted
    # 31..39 (9 frames) separate 30 from 40: gap 9 joins them, 8 does not.
    assert spans(merge_events(FRAMES, scores, 0.5, 10.0, 9, 1))[-1] == (30, 49)
    assert spans(merge_events(FRAMES, scores, 0.5, 10.0, 8, 1))[-1] == (40, 49)


def test_events_shorter_than_min_frames_are_dropped():
    scores = alarms_at(FRAMES, ALARMS)
    assert spans(merge_events(FRAMES, scores, 0.5, 10.0, 0, 3)) == [(10, 12), (15, 17), (40, 49)]  # lone 30 gone
    assert spans(merge_events(FRAMES, scores, 0.5, 10.0, 0, 4)) == [(40, 49)]
    # The span counts, not the alarm frames: 10-17 merged spans 8 frames with 6 alarms, and stays at min 8.
    assert spans(merge_events(FRAMES, scores, 0.5, 10.0, 2, 8))[0] == (10, 17)
    assert merge_events(FRAMES, scores, 0.5, 10.0, 0, 0) == merge_events(FRAMES, scores, 0.5, 10.0, 0, 1)


def test_alarm_is_strictly_above_the_threshold_and_peak_and_seconds():
    frames = np.arange(20, 30)
    scores = np.array([0.5, 0.6, 0.9, 0.7, 0.9, 0.5, 0.0, 0.0, 0.0, 0.0])
    (event,) = merge_events(frames, scores, 0.5, 25.0, 0, 1)
    assert (event.first_frame, event.last_frame) == (21, 24)  # the 0.5 at 20 and 25 equal the threshold
    assert (event.peak_frame, event.peak_score) == (22, 0.9)  # the first of two equal peaks
    assert event.start_s == pytest.approx(21 / 25) and event.end_s == pytest.approx(25 / 25)  # end of frame 24
    assert event.duration_s == pytest.approx(4 / 25)
    d = event.as_dict()
    assert d["n_frames"] == 4 and d["first_frame"] == 21 and d["duration_s"] == pytest.approx(0.16)
    assert merge_events(frames, np.zeros(10), 0.5, 25.0, 5, 1) == []


def test_missing_frame_numbers_count_as_gap():
    """Frames 20-29 did not decode: alarms on 18, 19 and 30, 31 are 10 frame numbers apart."""
    frames = np.concatenate([np.arange(10, 20), np.arange(30, 40)])
    scores = alarms_at(frames, [18, 19, 30, 31])
    assert spans(merge_events(frames, scores, 0.5, 10.0, 0, 1)) == [(18, 19), (30, 31)]
    assert spans(merge_events(frames, scores, 0.5, 10.0, 9, 1)) == [(18, 19), (30, 31)]
    (event,) = merge_events(frames, scores, 0.5, 10.0, 10, 1)  # a gap of 10 (20..29) is spanned
    assert spans([event]) == [(18, 31)] and event.n_alarm_frames == 4 and event.n_frames == 14


def test_bad_arrays_are_programming_errors():
    with pytest.raises(ValueError, match="strictly increasing"):
        merge_events(np.array([3, 2]), np.zeros(2), 0.5, 10.0, 0, 1)
    with pytest.raises(ValueError, match="equal"):
        merge_events(np.arange(3), np.zeros(2), 0.5, 10.0, 0, 1)
    with pytest.raises(ValueError, match="fps > 0"):
        merge_events(np.arange(3), np.zeros(3), 0.5, 0.0, 0, 1)


@pytest.mark.parametrize(
    "text, fps, frames",
    [
        ("0", 30.0, 0),
        ("0s", 30.0, 0),
        ("5", 30.0, 5),
        ("5f", 30.0, 5),
        ("5 frames", 30.0, 5),
        ("1 frame", 9.0, 1),
        ("0.5s", 10.0, 5),
        ("0.3s", 10.0, 3),
        ("0.5s", 25.0, 13),
        ("0.3 s", 25.0, 8),
        ("2sec", 29.97, 60),
        (".5s", 30.0, 15),
        (" 7 ", 1.0, 7),
    ],
)
def test_parse_duration(text, fps, frames):
    """Frames as given; seconds × fps rounded half up (0.5 s at 25 fps: 12.5 -> 13)."""
    assert parse_duration(text, "--event_gap", zero=True).frames(fps) == frames


@pytest.mark.parametrize("text", ["-1", "-0.5s", "", "abc", "5x", "1.5", "0.5 mm", "nan", "inf s", "5 s s"])
def test_bad_durations_name_the_flag_and_what_it_takes(text):
    with pytest.raises(FFPError) as info:
        parse_duration(text, "--min_event", zero=True)
    message = str(info.value)
    assert message.startswith("--min_event ") and repr(text) in message
    assert "frames" in message and "seconds ('0.5s'" in message


def test_events_line():
    assert events_line(3, 41, 0.5, 116) == "3 events (41 frames above threshold 0.5 of 116 scored)"
    assert events_line(1, 1, 3.0, 20) == "1 event (1 frame above threshold 3 of 20 scored)"
