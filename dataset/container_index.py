"""Frame numbers from a video container, true to the file even after damaged data (the container forensics).

A frame's number is its place among the frames the container lists: an AVI's idx1 index (`avi_frame_slots`), else the
rank of its packet's timestamp; the bytes between packets are followed to see packets the demuxer skipped unseen
(`_ByteTrail`). `numbered_frames` is the decode loop that puts them together (`Numbering`); `videos.VideoFile` runs
it.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np

# An AVI idx1 entry: chunk id ('00dc' = stream 00, compressed video), flags, offset of the chunk, its data size.
_IDX1 = np.dtype([("stream", "S2"), ("kind", "S2"), ("flags", "<u4"), ("offset", "<u4"), ("size", "<u4")])
_AVI_VIDEO_KINDS = (b"dc", b"db")  # compressed / uncompressed frames ('pc' palette changes are no frames)


def _avi_chunks(f, end: int) -> tuple[int | None, np.ndarray | None]:
    """(position of the 'movi' list's id, idx1 entries) found walking the top-level chunks of an AVI up to `end`."""
    movi, entries, pos = None, None, 12
    while pos + 8 <= end:
        f.seek(pos)
        header = f.read(12)
        if len(header) < 8:
            break
        tag, size = header[:4], int.from_bytes(header[4:8], "little")
        if tag == b"LIST" and header[8:12] == b"movi":
            movi = pos + 8
        elif tag == b"idx1":
            f.seek(pos + 8)
            data = f.read(size - size % _IDX1.itemsize)
            entries = np.frombuffer(data[: len(data) - len(data) % _IDX1.itemsize], _IDX1)
        pos += 8 + size + (size & 1)
    return movi, entries


def avi_frame_slots(path: Path, stream_index: int) -> dict[int, tuple[int, int]] | None:
    """{file position of a frame's data: (its frame number, its tick)} from an AVI's idx1 index, or None when the file
    has no
    usable one (not an AVI, no or damaged index, or an OpenDML file of several RIFF parts the idx1 does not cover).

    The AVI demuxer counts the packets it reads, so after damaged bytes it renumbers the frames that follow; the
    index says where every frame's chunk is. Frames are the index's chunks of this stream with data (a chunk of
    size 0 repeats the previous picture, e.g. OpenCV's tree.avi lists 444 chunks of which 68 hold pictures).
    A frame's tick is its chunk's place among all the stream's chunks, empty ones included: its time in units of
    the stream's time base (1 / frame rate). Index offsets are relative to the 'movi' list or absolute in the
    file: the first chunk's id tells which.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if head[:4] != b"RIFF" or head[8:12] != b"AVI ":
                return None
            riff_end = 8 + int.from_bytes(head[4:8], "little")
            if os.path.getsize(path) > riff_end + 8:  # further RIFF AVIX parts (OpenDML): idx1 covers the first
                return None
            movi, entries = _avi_chunks(f, riff_end)
            if movi is None or entries is None:
                return None
            chunks = entries[
                (entries["stream"] == f"{stream_index:02d}".encode()) & np.isin(entries["kind"], _AVI_VIDEO_KINDS)
            ]
            ticks = np.flatnonzero(chunks["size"] > 0)
            mine = chunks[ticks]
            if not len(mine):
                return None
            tag = bytes(mine["stream"][0]) + bytes(mine["kind"][0])
            for base in (movi, 0):
                f.seek(base + int(mine["offset"][0]))
                if f.read(4) == tag:
                    positions = mine["offset"].astype(np.int64) + base + 8
                    return dict(zip(positions.tolist(), enumerate(ticks.tolist())))
    except OSError:
        return None
    return None


class Numbering:
    """Frame numbers of one decode pass, strictly increasing, and what made any of them uncertain.

    A frame's number is its packet's place among the frames the container lists: the AVI index's slot of the
    packet's file position (`avi_frame_slots`), else the rank of its timestamp among the timestamps of the packets
    read so far (a decoder shows frames in timestamp order, after every packet it needs). Before any damage,
    decode order is exact too; after it, a frame that neither places is numbered next and marked uncertain.
    Containers that can lose packets without a trace (the demuxer skips damaged bytes silently) are followed byte by
    byte (`_ByteTrail`, which calls `lose` at every stretch of skipped bytes); from then on ranks no longer count the
    lost packets and nothing tells how many frames they held (a frame rate that changed inside them is invisible),
    so every later number is uncertain: estimated on the timestamp grid of the container's rate (`frame_ticks`, for
    Matroska, MPEG-TS/PS, FLV, … when every rank before the loss was on it), else in decode order (`counted`: an AVI
    without a usable index, whose timestamps count the packets read). MP4/MOV (a sample table lists every packet)
    and an indexed AVI never lose a packet unseen.
    """

    def __init__(
        self, slots: dict[int, tuple[int, int]] | None, counted: bool = False, frame_ticks: float | None = None
    ):
        self.slots, self.counted, self.frame_ticks = slots, counted, frame_ticks
        self.slot_of_pts: dict[int, tuple[int, int]] = {}  # AVI: a packet's timestamp -> its (slot, tick)
        self.timeline: list[int] = []  # other containers: sorted timestamps of the packets read
        self.last, self.damaged, self.on_grid = -1, False, True
        self.losses = 0  # stretches of packets lost unseen
        self.failed, self.recovered = 0, 0  # damaged packets since the last frame; those a good frame followed
        self.uncertain: list[tuple[int, int]] = []

    def packet(self, packet: av.Packet) -> None:
        """Account for one demuxed packet of the video stream (before decoding it)."""
        if packet.size == 0:  # the flush at the end
            return
        if packet.is_corrupt:
            self.damage()
        if self.slots is not None and not self.slot_of_pts and packet.pos not in self.slots:
            self.slots, self.counted = None, True  # not even the first packet is where the index says: no index
        if self.slots is not None:
            slot = self.slots.get(packet.pos) if packet.pos is not None else None
            if slot is None:
                self.damaged = True  # a packet the index does not list: the demuxer resynchronised after damage
            elif packet.pts is not None:
                self.slot_of_pts[packet.pts] = slot
        elif packet.pts is not None and not packet.is_discard:
            bisect.insort(self.timeline, packet.pts)

    def damage(self) -> None:
        """Damaged data met (a packet the decoder failed on, or one the demuxer flagged corrupt)."""
        self.failed += 1
        self.damaged = True

    def lose(self) -> None:
        """Packets were lost unseen (bytes skipped before the packet about to be accounted)."""
        self.losses, self.damaged = self.losses + 1, True

    def number(self, pts: int | None) -> int:
        """The next decoded frame's number, from its timestamp `pts` (None when it has none)."""
        self.recovered, self.failed = self.recovered + self.failed, 0
        if self.losses and self.slots is None:
            return self._after_loss(pts)
        placed = self._placed(pts)
        if placed is not None and placed > self.last:
            self.last = placed
            return placed
        self.last += 1
        # Decode order after damage, or a place already taken by another timestamp, is a guess; an intact stream
        # that repeats a timestamp (some recorders do) keeps its exact decode order.
        if self.damaged or (placed is not None and not self._repeated(pts)):
            self._doubt(self.last)
        return self.last

    def _repeated(self, pts: int | None) -> bool:
        """Whether timestamp `pts` came with more than one packet read so far (no index: ranks from the timeline)."""
        if pts is None or self.slots is not None:
            return False
        return bisect.bisect_right(self.timeline, pts) - bisect.bisect_left(self.timeline, pts) > 1

    def _after_loss(self, pts: int | None) -> int:
        """A frame's number once packets were lost unseen, always uncertain: its place on the timestamp grid when the
        stream kept to it before, else the next number."""
        grid = self._grid(pts) if pts is not None and self.on_grid and not self.counted else None
        self.last = grid if grid is not None and grid > self.last else self.last + 1
        self._doubt(self.last)
        return self.last

    def _grid(self, pts: int) -> int | None:
        """The frame number of timestamp `pts` at the container's constant rate (None without `frame_ticks`)."""
        if self.frame_ticks is None or not self.timeline:
            return None
        return round((pts - self.timeline[0]) / self.frame_ticks)

    def _doubt(self, number: int) -> None:
        """Record frame `number` as uncertain (extending the last range when it follows it)."""
        if self.uncertain and self.uncertain[-1][1] == number - 1:
            self.uncertain[-1] = (self.uncertain[-1][0], number)
        else:
            self.uncertain.append((number, number))

    def _placed(self, pts: int | None) -> int | None:
        """A frame's place from its timestamp: index slot, rank, or (after lost packets) grid; None when unknown."""
        if pts is None:
            return None
        if self.slots is not None:
            found = self.slot_of_pts.get(pts)
            return None if found is None else found[0]
        rank = bisect.bisect_left(self.timeline, pts)
        self.on_grid = self.on_grid and self._grid(pts) in (None, rank)
        return rank

    def tick(self, pts: int | None) -> int | None:
        """A frame's time in units of the stream's time base: its AVI index tick (the AVI demuxer's timestamps
        count the packets it read), else its timestamp; None when it has none."""
        if pts is not None and self.slots is not None:
            found = self.slot_of_pts.get(pts)
            return None if found is None else found[1]
        return pts

    def listed(self, declared: int) -> int | None:
        """Frames the container lists: the index's, else the packets' timestamps' or the declared count."""
        if self.slots is not None:
            return len(self.slots)
        return max(len(self.timeline), declared) or None


def _packets(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, trail: _ByteTrail | None
) -> Iterator[av.Packet]:
    """The stream's packets with data in file order, then one empty packet (flush the decoder); a read error ends the
    file (what was read counts). trail: every stream's packets are shown to it (a container that can lose packets
    unseen), so that it sees skipped bytes."""
    try:
        for packet in container.demux() if trail is not None else container.demux(stream):
            if trail is not None:
                trail.follow(packet)
            if packet.stream_index == stream.index and packet.size:  # empty ones: PyAV's flush, or no picture
                yield packet
    except av.error.FFmpegError:
        pass
    yield av.Packet()


# Bytes between two packets of a container without a packet table (Matroska, MPEG-TS/PS, FLV, …) that are more than
# its own overhead: block, cluster, tag and PES headers stay far below this, TS packet headers add ~2 % of a packet.
SKIPPED_BYTES_MIN, SKIPPED_BYTES_SHARE = 1024, 0.1


class _ByteTrail:
    """Follows the packets of every stream in file order: whether the demuxer skipped bytes between two packets (it
    resynchronises silently past damaged data, so packets there are lost without a trace).

    In an AVI (`avi`, read without an index) only whole filler chunks may lie between chunks; elsewhere a stretch
    longer than SKIPPED_BYTES_MIN + SKIPPED_BYTES_SHARE × the packet's size counts as skipped."""

    def __init__(self, path: Path, avi: bool):
        self.file = open(path, "rb") if avi else None
        self.expected: int | None = None  # where the next packet's data starts when nothing lies between
        self.resyncs = 0  # stretches of skipped bytes so far
        self.last_size = 0  # size of the previous packet (its container overhead grows with it)
        self.unplaced = 0  # bytes of packets without a known position since the last one with

    def follow(self, packet: av.Packet) -> None:
        """Note whether skipped bytes precede `packet`."""
        if packet.size == 0:
            return
        if packet.pos is None or packet.pos < 0:  # somewhere after the last known one (several in an MPEG-PS pack)
            self.unplaced += packet.size
            return
        expected, unplaced = self.expected, self.unplaced
        self.unplaced = 0
        if self.file is not None:  # AVI: the next chunk's 8-byte header, after the even-padded data
            self.expected = packet.pos + packet.size + (packet.size & 1) + 8
            skipped = expected is not None and packet.pos != expected and not _filler(self.file, expected, packet.pos)
        else:  # packets of interleaved streams may start before the previous one ends (MPEG-TS): the furthest end
            slack = SKIPPED_BYTES_MIN + SKIPPED_BYTES_SHARE * (max(packet.size, self.last_size) + unplaced)
            skipped = expected is not None and packet.pos - expected - unplaced > slack
            self.expected, self.last_size = max(expected or 0, packet.pos + packet.size), packet.size
        self.resyncs += skipped

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def _filler(file: BinaryIO, pos: int, target: int) -> bool:
    """Whether the bytes of an AVI `file` from data position `pos` up to `target` are whole filler chunks (list
    headers, JUNK, index chunks, empty chunks)."""
    while pos < target:
        file.seek(pos - 8)
        header = file.read(12)
        tag, size = header[:4], int.from_bytes(header[4:8], "little")
        if tag == b"LIST":
            pos += 12
        elif tag in (b"JUNK", b"idx1") or tag[:2] == b"ix" or (tag[:2].isdigit() and size == 0):
            pos += 8 + size + (size & 1)
        else:
            return False
    return pos == target


def _decoded(packet: av.Packet, stream, numbering: Numbering) -> list[av.VideoFrame]:
    """The frames decoding `packet` completes; none when the decoder fails on it (counted as damage)."""
    try:
        return stream.codec_context.decode(packet if packet.size else None)
    except av.error.EOFError:  # flushed already
        return []
    except av.error.FFmpegError:
        numbering.damage()
        return []


def numbered_frames(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, numbering: Numbering
) -> Iterator[tuple[int, av.VideoFrame]]:
    """(frame number, decoded frame) of every frame of `stream`, in order; damaged packets counted and skipped."""
    lossy = numbering.counted or numbering.frame_ticks is not None
    trail = _ByteTrail(Path(container.name), avi=numbering.counted) if lossy else None
    try:
        for packet in _packets(container, stream, trail):
            while trail is not None and numbering.losses < trail.resyncs:
                numbering.lose()
            numbering.packet(packet)
            for frame in _decoded(packet, stream, numbering):
                yield numbering.number(frame.pts), frame
    finally:
        if trail is not None:
            trail.close()
