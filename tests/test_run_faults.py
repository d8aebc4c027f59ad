"""Faults a long run meets (issue 13): resume that does what it says, logs that survive, prompt stops, locks,
full disks, diverging runs, interrupted streams, data folders left alone, shared permissions, damaged files.

Real `python train.py …` / `detect.py …` subprocesses where signals, kills or crashes are involved; tiny runs
(`--preset tiny`, 32×48) on fake Ped2-layout data.
"""
from __future__ import annotations

import json
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import fake_layouts as fl
from cli import run_cli
from helpers import train_cli
from test_faults import assert_same_training_state, load, popen_train, wait_for_checkpoint

ROOT = Path(__file__).resolve().parents[1]
LATEST = "ped2_latest.pth"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    fl.write_ped2_layout(root, n_train=2, n_test=2, n_frames=12)
    return root


def tiny_args(data_root: Path, out: Path, iters: int, *extra: str) -> list[str]:
    return ["--dataset", "ped2", "--preset", "tiny", "--flownet", "none", "--device", "cpu",
            "--data_root", str(data_root), "--weights_dir", str(out / "w"), "--log_dir", str(out / "runs"),
            "--iters", str(iters), "--val_interval", "100000", *extra]



# ------------------------------------------------------------------------------------------ 1. resume applies flags
def test_resume_applies_new_learning_rates_schedule_and_betas(data_root, tmp_path, capsys):
    """--resume latest --lr_g 1e-5 --lr_drop_steps 5 --adam_betas 0.5,0.9: the optimizer really uses them (the LR
    is 1e-5, then ×0.1 after step 5), the start-up printout lists each change, the saved config is what ran."""
    assert train_cli(tiny_args(data_root, tmp_path, 3, "--save_interval", "3")) == 0
    capsys.readouterr()
    assert train_cli(tiny_args(data_root, tmp_path, 7, "--resume", "latest", "--lr_g", "1e-5", "--lr_drop_steps", "5",
                           "--adam_betas", "0.5,0.9")) == 0
    out = capsys.readouterr().out
    for change in ("resume: lr_g: 0.0001 -> 1e-05 (applied)", "resume: lr_drop_steps: 7000 -> 5 (applied)",
                   "resume: adam_betas: 0.9,0.999 -> 0.5,0.9 (applied)"):
        assert change in out, out
    state = load(tmp_path / "w" / LATEST)
    group = state["optim_g"]["param_groups"][0]
    assert group["lr"] == pytest.approx(1e-6) and group["initial_lr"] == 1e-5 and tuple(group["betas"]) == (0.5, 0.9)
    assert state["optim_d"]["param_groups"][0]["initial_lr"] == pytest.approx(1e-5)   # --lr_d unchanged
    assert state["config"]["lr_g"] == 1e-5 and state["config"]["lr_drop_steps"] == [5]


def test_a_plain_resume_changes_nothing(data_root, tmp_path):
    """Resuming with no flags stays bit-identical to an uninterrupted run (the schedule is not rewritten)."""
    assert train_cli(tiny_args(data_root, tmp_path / "a", 6, "--save_interval", "3", "--lr_drop_steps", "2,4")) == 0
    assert train_cli(tiny_args(data_root, tmp_path / "b", 3, "--save_interval", "3", "--lr_drop_steps", "2,4")) == 0
    assert train_cli(tiny_args(data_root, tmp_path / "b", 6, "--save_interval", "3", "--lr_drop_steps", "2,4",
                           "--resume", "latest")) == 0
    assert_same_training_state(load(tmp_path / "a" / "w" / LATEST), load(tmp_path / "b" / "w" / LATEST))


# ------------------------------------------------------------------------------------------ 2. TensorBoard history
def read_scalars(folder: Path) -> dict[str, dict[int, float]]:
    """{tag: {step: value}} as TensorBoard shows a log folder: files in name order, a SessionLog START at step s
    discards what came before it at steps >= s (the purge of a resumed run), a torn last record is ignored."""
    from tensorboardX.proto.event_pb2 import Event, SessionLog
    scalars: dict[str, dict[int, float]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data, i = path.read_bytes(), 0
        while i + 12 <= len(data):
            (n,) = struct.unpack("Q", data[i:i + 8])
            if i + 12 + n + 4 > len(data):
                break
            event = Event()
            event.ParseFromString(data[i + 12:i + 12 + n])
            i += 12 + n + 4
            if event.HasField("session_log") and event.session_log.status == SessionLog.START:
                for series in scalars.values():
                    for step in [s for s in series if s >= event.step]:
                        del series[step]
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    scalars.setdefault(value.tag, {})[event.step] = value.simple_value
    return scalars


def test_tensorboard_curves_of_a_killed_and_resumed_run_equal_an_uninterrupted_one(data_root, tmp_path):
    """kill -9 after the first checkpoint, resume, twice: every logged step appears once, with the values of a
    straight run (training is bit-identical, and events after the last checkpoint are purged on resume)."""
    run = tmp_path / "k"
    for attempt in range(2):
        extra = ("--resume", "latest") if attempt else ()
        victim = popen_train(*tiny_args(data_root, run, 100_000, "--save_interval", "4", "--log_interval", "1", *extra))
        latest = run / "w" / LATEST
        start = load(latest)["step"] if latest.exists() else -1
        deadline = time.monotonic() + 120
        while not latest.exists() or load(latest)["step"] <= start:
            assert victim.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.2)       # let it log a few steps past the checkpoint: those must vanish
        victim.kill()
        victim.communicate()
    # Both runs end a few checkpoints past the last kill, however fast the machine trained the victims.
    n = load(run / "w" / LATEST)["step"] + 12
    straight = subprocess.run([sys.executable, "train.py", *tiny_args(data_root, tmp_path / "s", n,
                                                                       "--save_interval", "4", "--log_interval", "1")],
                              cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert straight.returncode == 0, straight.stderr[-2000:]
    done = subprocess.run([sys.executable, "train.py", *tiny_args(data_root, run, n, "--save_interval", "4",
                                                                  "--log_interval", "1", "--resume", "latest")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resuming at step {n}" not in done.stdout
    expected, got = read_scalars(tmp_path / "s" / "runs" / "ped2"), read_scalars(run / "runs" / "ped2")
    assert sorted(expected["train/g_total"]) == list(range(1, n + 1))
    assert got["train/g_total"] == expected["train/g_total"] and got["train/psnr"] == expected["train/psnr"]


# ------------------------------------------------------------------------------------------ 3. prompt stop
def test_sigterm_during_validation_saves_and_exits_at_once(tmp_path):
    """SIGTERM while a long validation runs: the validation is abandoned, 'latest' is saved at the current step
    without the (slow) training PSNR statistics, and the process exits 0. What makes the stop prompt is asserted
    (no statistics pass, no traceback), not a wall-clock limit: timings belong in bench/, not in tests."""
    root = tmp_path / "data"
    fl.write_ped2_layout(root, n_train=1, n_test=24, n_frames=60)      # a test set that takes a while
    proc = popen_train(*tiny_args(root, tmp_path, 100_000, "--val_interval", "2", "--save_interval", "1",
                                  "--eval_batch_size", "2", "--num_workers", "0"))
    wait_for_checkpoint(tmp_path / "w" / LATEST, proc)
    time.sleep(0.5)           # inside the first validation by now (it is far slower than two steps)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)    # a hang guard only
    assert proc.returncode == 0 and "Traceback" not in err, err[-2000:]
    state = load(tmp_path / "w" / LATEST)
    assert f"stopped at step {state['step']}" in out and "psnr_stats" not in state


# ------------------------------------------------------------------------------------------ 4. full disk
@pytest.fixture
def tiny_disk(tmp_path) -> Path:
    """A 1 MiB tmpfs (needs root and mount permission; skipped with the reason otherwise), unmounted after."""
    disk = tmp_path / "disk"
    disk.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True,
                            text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up here ({result.stderr.strip() or 'mount failed'})")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_full_log_disk_is_one_line_naming_the_folder(data_root, tmp_path, tiny_disk):
    """--log_dir on a disk that fills up: exit 1 with one line naming the folder (no hang), the last checkpoint
    is kept."""
    (tiny_disk / "filler").write_bytes(b"\0" * (1024 * 1024 - 48 * 1024))
    argv = tiny_args(data_root, tmp_path, 100_000, "--save_interval", "2", "--log_interval", "1")
    argv[argv.index("--log_dir") + 1] = str(tiny_disk / "runs")
    proc = subprocess.run([sys.executable, "train.py", *argv], cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith(f"error: --log_dir {tiny_disk / 'runs' / 'ped2'}") and "No space left" in lines[0]
    assert load(tmp_path / "w" / LATEST)["step"] >= 2


def test_detect_on_a_full_disk_names_the_file(tmp_path, tiny_disk):
    from test_eval_cli import save_random_checkpoint
    clip = tmp_path / "clip"
    clip.mkdir()
    rng = np.random.default_rng(0)
    import cv2
    for i in range(400):
        cv2.imwrite(str(clip / f"{i:04d}.png"), rng.integers(0, 255, (24, 36, 3), dtype=np.uint8))
    ckpt = save_random_checkpoint(tmp_path / "c.pth")
    (tiny_disk / "filler").write_bytes(b"\0" * (1024 * 1024 - 12 * 1024))
    proc = subprocess.run([sys.executable, "detect.py", "--video", str(clip), "--trained_model", str(ckpt),
                           "--out_dir", str(tiny_disk / "results"), "--mode", "stream", "--psnr_mean", "20",
                           "--psnr_std", "2", "--device", "cpu"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr[-2000:]
    assert str(tiny_disk / "results") in lines[0] and "No space left on device" in lines[0]


# ------------------------------------------------------------------------------------------ 5. two runs, one folder
def test_a_second_run_on_the_same_folders_refuses_and_a_killed_one_leaves_no_stuck_lock(data_root, tmp_path):
    first = popen_train(*tiny_args(data_root, tmp_path, 100_000, "--save_interval", "2"))
    wait_for_checkpoint(tmp_path / "w" / LATEST, first)
    second = subprocess.run([sys.executable, "train.py", *tiny_args(data_root, tmp_path, 4)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    lines = [line for line in second.stderr.splitlines() if line.strip()]
    assert second.returncode == 1 and len(lines) == 1
    assert "another training run is writing" in lines[0] and f"pid {first.pid}" in lines[0]
    first.kill()
    first.communicate()
    third = subprocess.run([sys.executable, "train.py", *tiny_args(data_root, tmp_path, 4)], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert third.returncode == 0, third.stderr[-2000:]
    assert not list((tmp_path / "w").glob(".*.lock")) and not list((tmp_path / "runs" / "ped2").glob(".*.lock"))


# ------------------------------------------------------------------------------------------ 7. divergence
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
    argv = tiny_args(data_root, tmp_path, 30, "--lr_g", "1e30", "--save_interval", "100", "--log_interval", "1",
                     *extra)
    proc = subprocess.run([sys.executable, "train.py", *argv], cwd=ROOT, capture_output=True, text=True, timeout=600)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1, f"exit {proc.returncode} (139 = segfault)\n{proc.stderr[-2000:]}"
    assert len(lines) == 1 and "non-finite loss at or before step" in lines[0], proc.stderr[-2000:]


# ------------------------------------------------------------------------------------------ 8. interrupted stream
def test_ctrl_c_during_a_stream_keeps_what_was_scored(tmp_path):
    """SIGINT while detect.py --mode stream scores a long clip: exit 130, and the result folder holds every row
    scored so far, the alarms, and a summary marked interrupted."""
    from test_eval_cli import save_random_checkpoint
    clip = tmp_path / "clip.avi"
    fl.write_video(clip, fl.video_frames(3000))
    ckpt = save_random_checkpoint(tmp_path / "c.pth")
    proc = subprocess.Popen([sys.executable, "detect.py", "--video", str(clip), "--trained_model", str(ckpt),
                             "--out_dir", str(tmp_path / "res"), "--mode", "stream", "--psnr_mean", "20",
                             "--psnr_std", "2", "--batch_size", "8", "--device", "cpu", "--threads", "1"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(p.name.startswith(".detect_clip") for p in (tmp_path / "res").glob(".*")) or \
            sum(1 for _ in next((tmp_path / "res").glob(".detect_clip*")).joinpath("scores.csv").open()) < 50:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    result = tmp_path / "res" / "detect_clip"
    rows = (result / "scores.csv").read_text().splitlines()
    summary = json.loads((result / "summary.json").read_text())
    assert 50 <= len(rows) - 1 < 2996 and summary["interrupted"] is True and summary["n_frames"] == len(rows) - 1
    assert (result / "alarms.txt").is_file() and "Interrupted" in (result / "index.html").read_text()
    assert "interrupted by signal 2: kept the" in err


# ------------------------------------------------------------------------------------------ 9. data folders
def test_no_command_writes_under_data_root(tmp_path):
    """Train (from video files beyond the RAM budget, so frames get extracted), resume with other flags, evaluate,
    detect and export: the data root is byte-for-byte what it was; the frame cache went to --cache_dir."""
    import export
    root = tmp_path / "data"
    fl.write_custom(root, "cam", test={"wed.avi": 10})
    fl.write_ped2_layout(root, n_train=1, n_test=1, n_frames=8)
    before = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*")}
    args = ["--dataset", "cam", "--preset", "tiny", "--flownet", "none", "--device", "cpu", "--data_root", str(root),
            "--weights_dir", str(tmp_path / "w"), "--log_dir", str(tmp_path / "runs"), "--cache_dir",
            str(tmp_path / "cache"), "--cache_max_gb", "0", "--iters", "2"]
    assert train_cli(args) == 0 and list((tmp_path / "cache" / "frames").iterdir())
    assert train_cli([*args[:-1], "4", "--resume", "latest"]) == 0
    assert train_cli([*args, "--resume", str(tmp_path / "w" / "cam_latest.pth"), "--dataset", "ped2"]) == 1
    import eval as eval_script
    assert run_cli(eval_script.main, ["--trained_model", str(tmp_path / "w" / "cam_latest.pth"), "--data_root",
                                      str(root), "--out_dir", str(tmp_path / "res"), "--num_workers", "0"]) == 0
    assert run_cli(export.main, [str(tmp_path / "w" / "cam_latest.pth"), str(tmp_path / "ship.pth")]) == 0
    after = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*")}
    assert after == before


# ------------------------------------------------------------------------------------------ 10. permissions
def test_outputs_honour_the_umask(data_root, tmp_path):
    """With umask 022, checkpoints, logs and result files are 0644 and result folders 0755 (not mkstemp's 0600)."""
    script = ("import os, sys, runpy; os.umask(0o022); sys.argv = sys.argv[1:]; "
              "runpy.run_path(sys.argv[0], run_name='__main__')")
    argv = tiny_args(data_root, tmp_path, 2)
    assert subprocess.run([sys.executable, "-c", script, "train.py", *argv], cwd=ROOT, timeout=300).returncode == 0
    ckpt = tmp_path / "w" / LATEST
    assert subprocess.run([sys.executable, "-c", script, "eval.py", "--trained_model", str(ckpt), "--data_root",
                           str(data_root), "--out_dir", str(tmp_path / "res"), "--save_video"], cwd=ROOT,
                          timeout=300).returncode == 0
    result = tmp_path / "res" / "ped2_ped2_latest"
    for path in [ckpt, tmp_path / "runs" / "ped2" / "config.json", result / "index.html", result / "scores.csv",
                 next((result / "videos").iterdir())]:
        assert oct(path.stat().st_mode & 0o777) == "0o644", path
    for folder in [result, result / "curves", result / "videos"]:
        assert oct(folder.stat().st_mode & 0o777) == "0o755", folder


# ------------------------------------------------------------------------------------------ 11. damaged checkpoint
def test_a_checkpoint_with_one_flipped_bit_is_refused(data_root, tmp_path):
    import zipfile
    from checkpoint import load_checkpoint
    from utils import FFPError
    assert train_cli(tiny_args(data_root, tmp_path, 2)) == 0
    ckpt = tmp_path / "w" / LATEST
    with zipfile.ZipFile(ckpt) as archive:
        member = max(archive.infolist(), key=lambda info: info.file_size)   # the largest weight tensor
    data = bytearray(ckpt.read_bytes())
    data[member.header_offset + 30 + len(member.filename) + len(member.extra) + member.file_size // 2] ^= 0x04
    damaged = tmp_path / "damaged.pth"
    damaged.write_bytes(bytes(data))
    with pytest.raises(FFPError, match=r"damaged\.pth is truncated, damaged or not a checkpoint .*fails the CRC-32"):
        load_checkpoint(damaged)


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


def test_sigterm_outside_a_commands_own_handler_cleans_up_and_exits_143(tmp_path):
    """eval.py and detect.py --mode whole have no stop handler of their own: SIGTERM becomes an exception, so the
    staged result folder is removed (no hidden temp folder left in results/) and the exit status is 143."""
    import os
    from evaluation.pages import StagedResult

    def main(_argv):
        with StagedResult(tmp_path / "results", "run", overwrite=False) as stage:
            (stage.dir / "scores.csv").write_text("half")
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)   # the signal arrives long before this ends
        return 0

    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)    # as in a fresh process
    try:
        assert run_cli(main, []) == 143
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL     # restored for whoever runs next
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert not (tmp_path / "results").exists() or list((tmp_path / "results").iterdir()) == []


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


def test_an_empty_start_is_one_error_line(tmp_path, capsys):
    """detect.py --start '' (an empty shell variable): one error line naming the flag, no traceback."""
    import detect
    from test_eval_cli import save_random_checkpoint
    clip = fl.write_video(tmp_path / "clip.avi", fl.video_frames(8))
    ckpt = save_random_checkpoint(tmp_path / "c.pth")
    argv = ["--video", str(clip), "--trained_model", str(ckpt), "--start", "", "--out_dir", str(tmp_path / "r")]
    assert run_cli(detect.main, argv) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: --start needs") and not (tmp_path / "r").exists()
