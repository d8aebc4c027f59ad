"""train.py under faults (issues 6 and 13): a full disk at a save or in the log, SIGINT/SIGTERM (also during a
validation), SIGKILL + resume (checkpoints and TensorBoard curves), a second run on the same folders, a diverging
or NaN loss, data folders left alone, shared permissions, temp files of killed saves.

Signals and kills use real `python train.py …` subprocesses (the `train_process` fixture), the rest run
in-process, all on tiny generated Ped2-layout datasets (tests/fake_layouts.py) at the tiny preset (32×48).
A run stopped by a signal gets an --iters just large enough to outlast the test's reaction to the event it
waits for (helpers.STEPS_AFTER_EVENT), and helpers.stop_run bounds the wait for its exit.
"""

from __future__ import annotations

import errno
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import fake_layouts as fl
import pytest
import torch
from helpers import (
    FASTEST_STEP_S,
    LATEST,
    ROOT,
    STEPS_AFTER_EVENT,
    assert_same_training_state,
    files_in,
    own_signal_handlers,
    read_state,
    stop_run,
    tiny_args,
    train_cli,
    wait_for_checkpoint,
)

from cli import run_cli


# ----------------------------------------------------------------------------------------------- a full disk
def test_training_save_failure_is_one_line_and_keeps_previous(data_root, tmp_path, monkeypatch, capsys):
    """The disk fills up at the second save (step 4): one 'error:' line naming the checkpoint, exit 1, and the
    step-2 checkpoint is still there, complete, with no temp file beside it."""
    import train as train_script

    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        if str(dst).endswith(LATEST) and Path(dst).exists():
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    capsys.readouterr()
    with own_signal_handlers():
        rc = run_cli(train_script.main, tiny_args(data_root, tmp_path, 6, "--save_interval", "2"))
    monkeypatch.undo()
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    latest = tmp_path / "w" / LATEST
    assert rc == 1 and len(err) == 1, err
    assert err[0].startswith(f"error: cannot write checkpoint {latest}") and "No space left" in err[0]
    assert read_state(latest)["step"] == 2 and files_in(tmp_path / "w") == [LATEST]


@pytest.mark.slow
def test_a_full_log_disk_is_one_line_naming_the_folder(data_root, tmp_path, tiny_disk):
    """--log_dir on a disk that fills up: exit 1 with one line naming the folder (no hang), the last checkpoint
    is kept."""
    (tiny_disk / "filler").write_bytes(b"\0" * (1024 * 1024 - 48 * 1024))
    # What is left of the disk (48 KiB, less a page for config.json) holds the events of about 125 steps at
    # --log_interval 1 (~330 B a step; measured: full at step 124). 300 steps fill it twice over, so the run ends
    # when the disk is full, and one whose disk never fills ends on its own (exit 0, failing the asserts below).
    argv = tiny_args(data_root, tmp_path, 300, "--save_interval", "2", "--log_interval", "1")
    argv[argv.index("--log_dir") + 1] = str(tiny_disk / "runs")
    proc = subprocess.run([sys.executable, "train.py", *argv], cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 1, f"exit {proc.returncode}\n{proc.stderr[-2000:]}"
    assert lines[0].startswith(f"error: --log_dir {tiny_disk / 'runs' / 'ped2'}") and "No space left" in lines[0]
    assert read_state(tmp_path / "w" / LATEST)["step"] >= 2


# ----------------------------------------------------------------------------------------------- signals
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_saves_current_step_and_exits_cleanly(data_root, tmp_path, train_process, signum):
    """A real training process gets SIGTERM/SIGINT after its first save (every 2 steps): it finishes the current
    step, saves `latest` at that step, says so, and exits 0 with no traceback."""
    iters = 2 + STEPS_AFTER_EVENT  # the first save, then enough steps to outlast the test's reaction
    proc = train_process(*tiny_args(data_root, tmp_path, iters, "--save_interval", "2"))
    latest = tmp_path / "w" / LATEST
    seen = wait_for_checkpoint(latest, proc)
    out, err = stop_run(proc, signum)
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err
    state = read_state(latest)
    assert seen <= state["step"] < iters
    assert f"stopped at step {state['step']}" in out
    assert all(torch.isfinite(t).all() for t in state["net_g"].values() if t.is_floating_point())
    assert files_in(tmp_path / "w") == [LATEST]  # no temp file, no 'best' (no validation)


def bytes_read(pid: int) -> int:
    """How many bytes process `pid` has read so far (Linux /proc/<pid>/io 'rchar'); -1 once it is gone."""
    try:
        text = Path(f"/proc/{pid}/io").read_text()
    except OSError:
        return -1
    return int(next(line.split()[1] for line in text.splitlines() if line.startswith("rchar:")))


def test_sigterm_during_validation_saves_and_exits_at_once(tmp_path, train_process):
    """SIGTERM while a long validation runs: the validation is abandoned, 'latest' is saved at the current step
    without the (slow) training PSNR statistics, and the process exits 0. What makes the stop prompt is asserted
    (no statistics pass, no traceback), not a wall-clock limit: timings belong in bench/, not in tests."""
    if not Path(f"/proc/{os.getpid()}/io").is_file():
        pytest.skip("needs Linux's /proc/<pid>/io to see the validation start")
    root = tmp_path / "data"
    info = fl.write_ped2_layout(root, n_train=1, n_test=24, n_frames=60)  # a test set that takes a while
    # Saves at every step, validations at steps 2, 4, 6 and 8 (the last one then computes the PSNR statistics).
    # The signal comes during the first; the three after it outlast the test's reaction many times over, and a
    # run whose signal went missing ends on its own (with statistics, failing the asserts) instead of training on.
    proc = train_process(
        *tiny_args(
            root,
            tmp_path,
            8,
            "--val_interval",
            "2",
            "--save_interval",
            "1",
            "--eval_batch_size",
            "2",
            "--num_workers",
            "0",
        )
    )
    wait_for_checkpoint(tmp_path / "w" / LATEST, proc)  # step 1's; step 2 is trained, then validated
    # Training frames are decoded before step 1; the test frames are read by the validation only. Once the run
    # has read three frames' worth more than at step 1's checkpoint, the first validation is under way.
    first_frames = sorted((info["dataset_dir"] / "testing" / "frames" / "01").iterdir())[:3]
    start, enough = bytes_read(proc.pid), sum(p.stat().st_size for p in first_frames)
    deadline = time.monotonic() + 120
    while bytes_read(proc.pid) - start < enough:
        assert proc.poll() is None, f"training ended (exit {proc.returncode}) before its first validation"
        assert time.monotonic() < deadline, "no validation started within 120 s of the first checkpoint"
        time.sleep(0.01)
    out, err = stop_run(proc, signal.SIGTERM)
    assert proc.returncode == 0 and "Traceback" not in err, err[-2000:]
    state = read_state(tmp_path / "w" / LATEST)
    assert f"stopped at step {state['step']}" in out and "psnr_stats" not in state, out[-2000:]


# ----------------------------------------------------------------------------------------------- kill + resume
@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted_run(data_root, tmp_path, train_process):
    """kill -9 after the first save (every 3 steps); --resume latest to N=12 steps gives bit-identical weights,
    optimizer and scheduler state to an uninterrupted 12-step run (CPU). At most one save interval is lost:
    the checkpoint on disk is the last save made before the kill."""
    n, killed, straight = 12, tmp_path / "killed", tmp_path / "straight"
    reference = train_process(*tiny_args(data_root, straight, n, "--save_interval", "3"))
    victim = train_process(*tiny_args(data_root, killed, 3 + STEPS_AFTER_EVENT, "--save_interval", "3"))
    latest = killed / "w" / LATEST
    seen = wait_for_checkpoint(latest, victim)
    stop_run(victim, signal.SIGKILL)
    assert victim.returncode == -signal.SIGKILL
    saved = read_state(latest)["step"]
    assert seen <= saved < n and saved % 3 == 0, (seen, saved)
    resumed = subprocess.run(
        [sys.executable, "train.py", *tiny_args(data_root, killed, n, "--resume", "latest", "--save_interval", "3")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming at step {saved}" in resumed.stdout
    _, err = reference.communicate(timeout=180)
    assert reference.returncode == 0, err[-2000:]
    assert_same_training_state(read_state(latest), read_state(straight / "w" / LATEST))


def read_scalars(folder: Path) -> dict[str, dict[int, float]]:
    """{tag: {step: value}} as TensorBoard shows a log folder: files in name order, a SessionLog START at step s
    discards what came before it at steps >= s (the purge of a resumed run), a torn last record is ignored."""
    from tensorboardX.proto.event_pb2 import Event, SessionLog

    scalars: dict[str, dict[int, float]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data, i = path.read_bytes(), 0
        while i + 12 <= len(data):
            (n,) = struct.unpack("Q", data[i : i + 8])
            if i + 12 + n + 4 > len(data):
                break
            event = Event()
            event.ParseFromString(data[i + 12 : i + 12 + n])
            i += 12 + n + 4
            if event.HasField("session_log") and event.session_log.status == SessionLog.START:
                for series in scalars.values():
                    for step in [s for s in series if s >= event.step]:
                        del series[step]
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    scalars.setdefault(value.tag, {})[event.step] = value.simple_value
    return scalars


@pytest.mark.slow
def test_tensorboard_curves_of_a_killed_and_resumed_run_equal_an_uninterrupted_one(data_root, tmp_path, train_process):
    """kill -9 after the first checkpoint, resume, twice: every logged step appears once, with the values of a
    straight run (training is bit-identical, and events after the last checkpoint are purged on resume)."""
    run = tmp_path / "k"
    latest, log = run / "w" / LATEST, run / "runs" / "ped2"
    for attempt in range(2):
        extra = ("--resume", "latest") if attempt else ()
        start = read_state(latest)["step"] if latest.exists() else -1
        # the next checkpoint (4 steps on), then enough steps to outlast the test's reaction
        victim = train_process(
            *tiny_args(
                data_root,
                run,
                max(start, 0) + 4 + STEPS_AFTER_EVENT,
                "--save_interval",
                "4",
                "--log_interval",
                "1",
                *extra,
            )
        )
        # Kill once a checkpoint past `start` is on disk and so are the log events up to its step (the run
        # flushes its log right after each save). Steps trained after it are only in the log writer's buffer
        # (flushed at the next save): the kill throws them away, as it would throw away any unsaved work.
        deadline = time.monotonic() + 120
        while True:
            assert victim.poll() is None, f"training exited ({victim.returncode}) before it was killed"
            assert time.monotonic() < deadline, f"no new checkpoint and log flush within 120 s (after step {start})"
            step = read_state(latest)["step"] if latest.exists() else -1
            if step > start and max(read_scalars(log).get("train/g_total", {-1: 0})) >= step:
                break
            time.sleep(0.01)
        stop_run(victim, signal.SIGKILL)
    # Both runs end a few checkpoints past the last kill, however fast the machine trained the victims.
    n = read_state(latest)["step"] + 12
    straight = subprocess.run(
        [
            sys.executable,
            "train.py",
            *tiny_args(data_root, tmp_path / "s", n, "--save_interval", "4", "--log_interval", "1"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert straight.returncode == 0, straight.stderr[-2000:]
    done = subprocess.run(
        [
            sys.executable,
            "train.py",
            *tiny_args(data_root, run, n, "--save_interval", "4", "--log_interval", "1", "--resume", "latest"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resuming at step {n}" not in done.stdout
    expected, got = read_scalars(tmp_path / "s" / "runs" / "ped2"), read_scalars(log)
    assert sorted(expected["train/g_total"]) == list(range(1, n + 1))
    assert got["train/g_total"] == expected["train/g_total"] and got["train/psnr"] == expected["train/psnr"]


# ----------------------------------------------------------------------------------------------- two runs, one folder
@pytest.mark.slow
def test_a_second_run_on_the_same_folders_refuses_and_a_killed_one_leaves_no_stuck_lock(
    data_root, tmp_path, train_process
):
    # The first run must hold its lock while a second Python process starts and is refused (allowed 120 s):
    # at FASTEST_STEP_S a step that is 6,000 steps. It is killed as soon as the second has answered.
    first = train_process(*tiny_args(data_root, tmp_path, 2 + int(120 / FASTEST_STEP_S), "--save_interval", "2"))
    wait_for_checkpoint(tmp_path / "w" / LATEST, first)
    second = subprocess.run(
        [sys.executable, "train.py", *tiny_args(data_root, tmp_path, 4)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [line for line in second.stderr.splitlines() if line.strip()]
    assert second.returncode == 1 and len(lines) == 1
    assert "another training run is writing" in lines[0] and f"pid {first.pid}" in lines[0]
    stop_run(first, signal.SIGKILL)
    third = subprocess.run(
        [sys.executable, "train.py", *tiny_args(data_root, tmp_path, 4)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert third.returncode == 0, third.stderr[-2000:]
    assert not list((tmp_path / "w").glob(".*.lock")) and not list((tmp_path / "runs" / "ped2").glob(".*.lock"))


# ----------------------------------------------------------------------------------------------- divergence
@pytest.mark.slow
@pytest.mark.parametrize("flownet", ["classical", "flownet2sd", "none"])
def test_a_diverging_run_stops_with_the_documented_error_for_every_estimator(data_root, tmp_path, flownet):
    """--lr_g 1e30 blows the generator up within steps; with any flow estimator the run ends with the one-line
    'non-finite loss' error (exit 1), not a crash (a NaN reaching grid_sample's CPU backward used to segfault).
    FlowNet2-SD gets random weights (no download here) through --flownet_ckpt."""
    extra = ["--flownet", flownet]
    if flownet == "flownet2sd":
        from flownet import FlowNet2SD

        torch.manual_seed(0)
        ckpt = tmp_path / "FlowNet2-SD.pth"
        torch.save({k: v.half() for k, v in FlowNet2SD().state_dict().items()}, ckpt)
        extra += ["--flownet_ckpt", str(ckpt)]
    argv = tiny_args(data_root, tmp_path, 30, "--lr_g", "1e30", "--save_interval", "100", "--log_interval", "1", *extra)
    proc = subprocess.run([sys.executable, "train.py", *argv], cwd=ROOT, capture_output=True, text=True, timeout=600)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1, f"exit {proc.returncode} (139 = segfault)\n{proc.stderr[-2000:]}"
    assert len(lines) == 1 and "non-finite loss at or before step" in lines[0], proc.stderr[-2000:]


def test_nan_loss_stops_keeps_last_good_checkpoint_and_reports_step(tmp_path, monkeypatch, capsys):
    """The intensity loss turns NaN at step 5 (saves every 2 steps): training stops with one error line
    naming step 5; the latest checkpoint on disk is step 4's and holds finite weights."""
    import train as train_script
    import training.losses as losses

    good_data = tmp_path / "good_data"
    fl.write_ped2_layout(good_data, n_train=2, n_test=2, n_frames=8)
    real, calls = losses.intensity_loss, {"n": 0}

    def nan_at_step_5(pred, target):
        calls["n"] += 1
        value = real(pred, target)
        return value * float("nan") if calls["n"] == 5 else value

    monkeypatch.setattr(losses, "intensity_loss", nan_at_step_5)
    argv = [
        "--dataset",
        "ped2",
        "--preset",
        "tiny",
        "--iters",
        "12",
        "--flownet",
        "none",
        "--device",
        "cpu",
        "--data_root",
        str(good_data),
        "--weights_dir",
        str(tmp_path / "w"),
        "--log_dir",
        str(tmp_path / "runs"),
        "--save_interval",
        "2",
        "--log_interval",
        "1",
        "--val_interval",
        "100",
    ]
    capsys.readouterr()
    with own_signal_handlers():
        rc = run_cli(train_script.main, argv)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == 1 and len(err) == 1 and err[0].startswith("error: non-finite loss"), err
    assert "step 5" in err[0]
    state = read_state(tmp_path / "w" / "ped2_latest.pth")
    assert state["step"] == 4
    for part in ("net_g", "net_d"):
        assert all(torch.isfinite(t).all() for t in state[part].values() if t.is_floating_point())
    assert not list((tmp_path / "w").glob("*.tmp"))


# ----------------------------------------------------------------------------------------------- what a run touches
def test_no_command_writes_under_data_root(tmp_path):
    """Train (from video files beyond the RAM budget, so frames get extracted), resume with other flags, evaluate,
    detect and export: the data root is byte-for-byte what it was; the frame cache went to --cache_dir."""
    import eval as eval_script
    import export

    root = tmp_path / "data"
    fl.write_custom(root, "cam", test={"wed.avi": 10})
    fl.write_ped2_layout(root, n_train=1, n_test=1, n_frames=8)
    before = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*")}
    args = [
        "--dataset",
        "cam",
        "--preset",
        "tiny",
        "--flownet",
        "none",
        "--device",
        "cpu",
        "--data_root",
        str(root),
        "--weights_dir",
        str(tmp_path / "w"),
        "--log_dir",
        str(tmp_path / "runs"),
        "--cache_dir",
        str(tmp_path / "cache"),
        "--cache_max_gb",
        "0",
        "--iters",
        "2",
    ]
    assert train_cli(args) == 0 and list((tmp_path / "cache" / "frames").iterdir())
    assert train_cli([*args[:-1], "4", "--resume", "latest"]) == 0
    assert train_cli([*args, "--resume", str(tmp_path / "w" / "cam_latest.pth"), "--dataset", "ped2"]) == 1
    assert (
        run_cli(
            eval_script.main,
            [
                "--trained_model",
                str(tmp_path / "w" / "cam_latest.pth"),
                "--data_root",
                str(root),
                "--out_dir",
                str(tmp_path / "res"),
                "--num_workers",
                "0",
            ],
        )
        == 0
    )
    assert run_cli(export.main, [str(tmp_path / "w" / "cam_latest.pth"), str(tmp_path / "ship.pth")]) == 0
    after = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*")}
    assert after == before


@pytest.mark.slow
def test_outputs_honour_the_umask(data_root, tmp_path):
    """With umask 022, checkpoints, logs and result files are 0644 and result folders 0755 (not mkstemp's 0600)."""
    script = (
        "import os, sys, runpy; os.umask(0o022); sys.argv = sys.argv[1:]; "
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    argv = tiny_args(data_root, tmp_path, 2)
    assert subprocess.run([sys.executable, "-c", script, "train.py", *argv], cwd=ROOT, timeout=300).returncode == 0
    ckpt = tmp_path / "w" / LATEST
    assert (
        subprocess.run(
            [
                sys.executable,
                "-c",
                script,
                "eval.py",
                "--trained_model",
                str(ckpt),
                "--data_root",
                str(data_root),
                "--out_dir",
                str(tmp_path / "res"),
                "--save_video",
            ],
            cwd=ROOT,
            timeout=300,
        ).returncode
        == 0
    )
    result = tmp_path / "res" / "ped2_ped2_latest"
    for path in [
        ckpt,
        tmp_path / "runs" / "ped2" / "config.json",
        result / "index.html",
        result / "scores.csv",
        next((result / "videos").iterdir()),
    ]:
        assert oct(path.stat().st_mode & 0o777) == "0o644", path
    for folder in [result, result / "curves", result / "videos"]:
        assert oct(folder.stat().st_mode & 0o777) == "0o755", folder


def test_stale_temp_files_of_this_dataset_are_removed_at_start_and_nothing_else(tmp_path, capsys):
    info_root = tmp_path / "data"
    fl.write_ped2_layout(info_root, n_test=2, n_frames=8)
    weights = tmp_path / "w"
    weights.mkdir()
    mine = [weights / ".ped2_latest.pth.k3j_x9q2.tmp", weights / ".ped2_best.pth.a1b2c3d4.tmp"]
    others = [weights / ".ped1_latest.pth.a1b2c3d4.tmp", weights / "notes.tmp", weights / ".ped2_latest.pth.keep"]
    for path in mine + others:
        path.write_bytes(b"partial")
    assert train_cli(tiny_args(info_root, tmp_path, 2, val_interval=2)) == 0
    assert not any(p.exists() for p in mine) and all(p.exists() for p in others)
    assert capsys.readouterr().out.count("a temp file left by a run killed while saving") == 2
