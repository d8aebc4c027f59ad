"""training/runlog.py: the run lock (one folder named two ways is one lock) and the traces a failed run removes."""

from __future__ import annotations

from pathlib import Path


def test_the_same_folder_named_two_ways_is_one_lock(tmp_path, monkeypatch):
    """--weights_dir w --log_dir <abs path of w>: one folder, one lock — the run must not refuse itself."""
    from training.runlog import RunLock

    monkeypatch.chdir(tmp_path)
    (tmp_path / "w").mkdir()
    lock = RunLock([Path("w"), tmp_path / "w"], "ped2").acquire()
    try:
        assert len(lock.paths) == 1
    finally:
        lock.release()


def test_a_failed_run_removes_only_its_own_traces(tmp_path):
    """RunTraces: of the shared --weights_dir nothing is touched (another dataset's checkpoint appears there while
    the run fails); in the run's own log folder the files it added go, a config.json it overwrote gets its old
    content back, and only the folders it created (and left empty) are removed."""
    from training.runlog import RunTraces

    weights, run_dir = tmp_path / "w", tmp_path / "runs" / "ped2"
    weights.mkdir()
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text("previous run")
    (run_dir / "events.old").write_text("previous events")
    traces = RunTraces([weights, run_dir, tmp_path / "new" / "deeper"], run_dir)
    traces.snapshot()
    (weights / "avenue_latest.pth").write_bytes(b"another run's checkpoint")
    (run_dir / "config.json").write_text("failed run")
    (run_dir / "events.new").write_text("failed run's events")
    (tmp_path / "new" / "deeper").mkdir(parents=True)
    traces.remove_files()
    traces.remove_folders()
    assert (weights / "avenue_latest.pth").read_bytes() == b"another run's checkpoint"
    assert (run_dir / "config.json").read_text() == "previous run" and (run_dir / "events.old").is_file()
    assert not (run_dir / "events.new").exists() and not (tmp_path / "new").exists()
