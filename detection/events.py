"""Alarm frames -> events: what detect.py reports about an unlabelled video.

A frame *alarms* when its anomaly score is above the threshold (strictly). One anomaly (a cart crossing the
scene) makes a run of alarm frames with short dips below the threshold inside it, so the report lists
*events*: alarm frames at most `gap_frames` frame numbers apart merged into one, and events spanning fewer
than `min_frames` frames dropped as flicker. detect.py takes both as --event_gap / --min_event, in frames
('5', '5f', '5 frames') or seconds ('0.5s'), converted with the input's frame rate (durations.py).

Units: frame numbers are the source's own (dataset/videos.py and dataset/folders.py: frames that did not decode and
missing frame files leave holes in the numbering); seconds are frame number / fps, the start of that frame; an
event's end_s is the end of its last frame, (last_frame + 1) / fps. (The live loop, detection/watch.py, replaces
both seconds with the frames' own times.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

DEFAULT_EVENT_GAP = "0.5s"  # alarms closer than this merge into one event
DEFAULT_MIN_EVENT = "0.3s"  # events shorter than this are dropped


@dataclass(frozen=True)
class Event:
    """One event: alarm frames merged across short gaps.

    first_frame, last_frame: frame numbers of its first and last alarm frame (inclusive); peak_frame,
    peak_score: the frame with the highest score (the first one on ties) and that score; n_alarm_frames: scored
    frames above the threshold inside it (≤ the span: dips below the threshold and missing frames are not
    counted); start_s, end_s: seconds from the source's frame 0 to the start of first_frame and to the end of
    last_frame, (last_frame + 1) / fps.
    """

    first_frame: int
    last_frame: int
    peak_frame: int
    peak_score: float
    n_alarm_frames: int
    start_s: float
    end_s: float

    @property
    def n_frames(self) -> int:
        """Frames the event spans, last − first + 1 (frame numbers; missing and below-threshold ones included)."""
        return self.last_frame - self.first_frame + 1

    @property
    def duration_s(self) -> float:
        """Seconds the event spans, end_s − start_s."""
        return self.end_s - self.start_s

    def as_dict(self) -> dict:
        """The fields plus n_frames and duration_s, for summary.json."""
        return {**asdict(self), "n_frames": self.n_frames, "duration_s": self.duration_s}


def merge_events(frames, scores, threshold: float, fps: float, gap_frames: int, min_frames: int) -> list[Event]:
    """Events of one scored video, in frame order.

    frames: (N,) strictly increasing frame numbers; scores: (N,) anomaly scores; a frame alarms when its score
    > threshold (strictly). fps: frames per second (> 0), for start_s/end_s. gap_frames (≥ 0): two alarm frames
    whose numbers differ by at most gap_frames + 1, i.e. with at most gap_frames frame numbers between them,
    belong to one event. The gap is counted in frame numbers, not in scored rows: frames below the threshold
    and frames missing from the source (a damaged file's undecodable stretch) count alike, so an event spans a
    short decode gap but not one longer than gap_frames. min_frames (≥ 0): events spanning fewer frames
    (last − first + 1) are dropped; 0 and 1 keep everything.

    gap_frames=0, min_frames=1 gives the plain runs of consecutive alarm frames, split wherever a frame number
    is skipped (a resampled input skips numbers between its kept frames: give the gap in seconds there, as the
    default does).
    """
    import numpy as np  # here, not at the top: parse_args of detect.py imports this module before numpy loads

    frames = np.asarray(frames, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    if frames.ndim != 1 or frames.shape != scores.shape:
        raise ValueError(f"frames {frames.shape} and scores {scores.shape} must be equal 1-D arrays")
    # One implementation for a whole file and for the live loop: the file's frames fed to the live loop's tracker.
    tracker = EventTracker(threshold, fps, gap_frames, min_frames)
    events = [event for f, s in zip(frames.tolist(), scores.tolist()) if (event := tracker.add(f, s)) is not None]
    last = tracker.finish()
    return events if last is None else [*events, last]


class EventTracker:
    """Events one scored frame at a time (`merge_events` runs it over a whole file): each event is returned the
    moment it is known to have ended.

        tracker = EventTracker(threshold, fps, gap_frames, min_frames)
        for frame, score in stream:
            ended = tracker.add(frame, score)     # an Event, or None; tracker.peak_is_new: frame is the open peak
        last = tracker.finish()                    # the event still open at the end, if long enough

    Arguments as merge_events'. An event ends when a frame arrives more than gap_frames frame numbers after its
    last alarm frame, so the answer comes gap_frames + 1 frames after the event's last alarm. Memory: one open
    event, whatever the length.
    """

    def __init__(self, threshold: float, fps: float, gap_frames: int, min_frames: int):
        if not fps > 0 or gap_frames < 0 or min_frames < 0:
            raise ValueError(f"need fps > 0, gap_frames >= 0, min_frames >= 0; got {fps}, {gap_frames}, {min_frames}")
        self.threshold, self.fps, self.gap, self.min_frames = threshold, fps, gap_frames, min_frames
        self._open: list | None = None  # [first, last, peak_frame, peak_score, n_alarm_frames]
        self._previous: int | None = None
        self.peak_is_new = False  # the frame just added is the peak of the open event so far

    @property
    def opened_at(self) -> int | None:
        """Frame number of the open event's first alarm frame (None when no event is open)."""
        return None if self._open is None else self._open[0]

    def add(self, frame: int, score: float) -> Event | None:
        """Feed the next scored frame (strictly increasing numbers); returns the event that ended before it."""
        if self._previous is not None and frame <= self._previous:
            raise ValueError(f"frame numbers must be strictly increasing: {frame} after {self._previous}")
        self._previous = frame
        ended = None
        if self._open is not None and frame - self._open[1] - 1 > self.gap:
            ended = self.finish()
        self.peak_is_new = False
        if score > self.threshold:
            if self._open is None:
                self._open = [frame, frame, frame, float(score), 1]
                self.peak_is_new = True
            else:
                self._open[1] = frame
                self._open[4] += 1
                if score > self._open[3]:  # strictly: the first frame wins ties, as in merge_events
                    self._open[2:4] = [frame, float(score)]
                    self.peak_is_new = True
        return ended

    def finish(self) -> Event | None:
        """Close the open event; returns it when it spans at least min_frames frames, else None."""
        if self._open is None:
            return None
        first, last, peak, peak_score, n = self._open
        self._open = None
        if last - first + 1 < self.min_frames:
            return None
        return Event(first, last, peak, peak_score, n, first / self.fps, (last + 1) / self.fps)


def events_line(n_events: int, n_above: int, threshold: float, n_scored: int) -> str:
    """The one-line summary of a detect run, e.g. '3 events (41 frames above threshold 0.5 of 116 scored)'."""
    return (
        f"{n_events} event{'' if n_events == 1 else 's'} ({n_above} frame{'' if n_above == 1 else 's'} above "
        f"threshold {threshold:g} of {n_scored} scored)"
    )


def events_rule(gap_frames: int, min_frames: int, fps: float) -> str:
    """How alarm frames became events (`merge_events`' gap_frames and min_frames), in frames and seconds at `fps`,
    as detect.py prints it and its page states it."""
    return (
        f"alarm frames with gaps of at most {gap_frames} frame(s) ({gap_frames / fps:.3g} s) between them form "
        f"one event; events spanning fewer than {min_frames} frame(s) ({min_frames / fps:.3g} s) are dropped; "
        f"seconds at {fps:g} fps"
    )
