"""The --on_event command of a live run: run once per event, in order, on its own thread, never stopping detection."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from collections.abc import Callable

ON_EVENT_TIMEOUT_S = 60.0  # an --on_event command still running after this is killed (and said)
ON_EVENT_QUEUE = 100  # events waiting for --on_event at most; more are not handed to it (and said)


class OnEventRunner:
    """Runs the --on_event command once per event, in order, on its own thread: argv without a shell, the event's
    JSON on stdin. A failure (non-zero exit, cannot start) or a command still running after ON_EVENT_TIMEOUT_S
    (killed) is logged and never stops detection; at most ON_EVENT_QUEUE events wait."""

    def __init__(self, argv: tuple[str, ...], log: Callable[[str], None]):
        self.argv, self.log = argv, log
        self.ran = self.failed = self.skipped = 0
        self._queue: queue.Queue = queue.Queue(maxsize=ON_EVENT_QUEUE)
        self._thread = threading.Thread(target=self._work, name="on-event", daemon=True)
        self._thread.start()

    def submit(self, event: dict) -> None:
        """Hand one event to the command (skipped, and said, when ON_EVENT_QUEUE events already wait)."""
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.skipped += 1
            self.log(f"--on_event: {ON_EVENT_QUEUE} events already waiting; event {event['event']} not handed over")

    def close(self, wait_s: float = ON_EVENT_TIMEOUT_S) -> None:
        """Let the waiting events run (at most wait_s seconds in all), then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout=wait_s)

    def _work(self) -> None:
        while (event := self._queue.get()) is not None:
            self._run(event)

    def _run(self, event: dict) -> None:
        name = self.argv[0]
        try:
            done = subprocess.run(
                self.argv,
                input=(json.dumps(event) + "\n").encode(),  # one line: `tee -a log` keeps events apart
                capture_output=True,
                timeout=ON_EVENT_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            self.failed += 1
            self.log(f"--on_event {name}: running over {ON_EVENT_TIMEOUT_S:g} s, killed (event {event['event']})")
            return
        except OSError as exc:
            self.failed += 1
            self.log(f"--on_event {name}: cannot run it for event {event['event']}: {exc.strerror or exc}")
            return
        self.ran += 1
        if done.returncode != 0:
            self.failed += 1
            last = (done.stderr.decode(errors="replace").strip().splitlines() or [""])[-1]
            self.log(f"--on_event {name}: exit status {done.returncode} (event {event['event']}) {last}".rstrip())
