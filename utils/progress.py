"""Progress lines and durations as a person reads them: a bar on a terminal, plain lines in a log file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


def duration_text(seconds: float) -> str:
    """'1h02m', '3m05s', '42s': a duration in seconds as progress lines and reports show it."""
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else (f"{minutes}m{secs:02d}s" if minutes else f"{secs}s")


@dataclass(frozen=True)
class PlainLines:
    """How often a Progress without a terminal prints its line: every `every` units, at most once per
    `min_interval_s` seconds (and at the end)."""

    every: int = 1
    min_interval_s: float = 10.0


class Progress:
    """Progress that suits where output goes: a tqdm bar on a terminal, plain lines in a log file.

    When stdout is not a terminal (`nohup`, a cluster job, `> log 2>&1`) a bar prints nothing useful, so a
    line `desc: n/total (p%), rate unit/s, ETA …, k=v …` goes to stdout as often as `lines` says (`PlainLines`).
    `write` prints a line either way without breaking the bar. on_update: called at every update, also when the
    display is disabled (DDP ranks other than 0).
    """

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str = "it",
        initial: int = 0,
        lines: PlainLines = PlainLines(),
        enabled: bool = True,
        on_update: Callable[[], str | None] | None = None,
    ):
        import sys
        import time

        from tqdm import tqdm

        self.total, self.desc, self.unit, self.n, self.every = total, desc, unit, initial, max(1, lines.every)
        self.enabled, self.min_interval_s, self._clock = enabled, lines.min_interval_s, time.monotonic
        self.postfix: dict = {}
        self.on_update = on_update
        self._start, self._start_n = self._clock(), initial
        self._last_print, self._last_n = self._start, initial
        self.bar = (
            tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True)
            if enabled and sys.stdout.isatty()
            else None
        )

    def update(self, n: int = 1) -> None:
        """Count `n` more units done; maybe print a plain line. `on_update` runs first (e.g.
        utils.threads.recheck_threads: the display is what a command drives between units of work); a line it
        returns is written when the display is enabled."""
        self.n += n
        line = self.on_update() if self.on_update is not None else None
        if line and self.enabled:
            self.write(line)
        if self.bar is not None:
            self.bar.update(n)
        elif (
            self.enabled
            and self.n - self._last_n >= self.every
            and self._clock() - self._last_print >= self.min_interval_s
        ):
            self._line()

    def set_postfix(self, values: dict) -> None:
        """Values shown after the rate (e.g. losses); formatted by the caller."""
        self.postfix = dict(values)
        if self.bar is not None:
            self.bar.set_postfix(self.postfix)

    def write(self, text: str) -> None:
        """Print one line (above the bar on a terminal)."""
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)

    def _line(self) -> None:
        now = self._clock()
        rate = (self.n - self._start_n) / max(now - self._start, 1e-9)
        parts = [f"{self.desc}: {self.n}" + (f"/{self.total} ({100 * self.n / self.total:.0f}%)" if self.total else "")]
        parts.append(f"{rate:.2f} {self.unit}/s")
        if self.total and rate > 0:
            parts.append(f"ETA {duration_text((self.total - self.n) / rate)}")
        parts += [f"{k} {v}" for k, v in self.postfix.items()]
        print(", ".join(parts), flush=True)
        self._last_print, self._last_n = now, self.n

    def close(self) -> None:
        """Final line (plain mode) or close the bar."""
        if self.bar is not None:
            self.bar.close()
        elif self.enabled and self.n != self._last_n:
            self._line()
