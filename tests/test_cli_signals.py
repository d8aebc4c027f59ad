"""cli.py's signal handling: StopRequest (a first SIGTERM asks the work to stop, a second one leaves at once) and
run_cli (SIGTERM outside a command's own handler cleans up and exits 143)."""

from __future__ import annotations

import os
import signal

import pytest
from helpers import wait_for_signal_handler

from cli import run_cli


def test_second_signal_exits_at_once():
    """The first SIGTERM only asks the work to stop (StopRequest.signum); a second one leaves at once, as
    cli.Terminated (exit 143 through run_cli), raised from the handler wherever the program is; the previous
    handlers come back when the block ends."""
    from cli import StopRequest, Terminated

    before = signal.getsignal(signal.SIGTERM)
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGTERM)  # delivered to this thread before os.kill returns (POSIX)
        assert stop.signum == signal.SIGTERM
        with pytest.raises(Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
            wait_for_signal_handler()
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigterm_outside_a_commands_own_handler_cleans_up_and_exits_143(tmp_path):
    """eval.py and detect.py --mode whole have no stop handler of their own: SIGTERM becomes an exception, so the
    staged result folder is removed (no hidden temp folder left in results/) and the exit status is 143."""
    from evaluation.pages import StagedResult

    def main(_argv):
        with StagedResult(tmp_path / "results", "run", overwrite=False) as stage:
            (stage.dir / "scores.csv").write_text("half")
            os.kill(os.getpid(), signal.SIGTERM)
            wait_for_signal_handler()
        return 0

    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as in a fresh process
    try:
        assert run_cli(main, []) == 143
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored for whoever runs next
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert not (tmp_path / "results").exists() or list((tmp_path / "results").iterdir()) == []
