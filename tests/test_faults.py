"""Faults survived (issue 6): crashes mid-save, SIGINT/SIGTERM, SIGKILL + resume, exact resume, no silent overwrite.

Signals and SIGKILL use real `python train.py …` subprocesses, the rest run in-process, all on a tiny generated
Ped2-layout dataset (tests/fake_layouts.py: 2 training videos of 12-13 frames, 2 test videos) at the tiny preset.
"""
from __future__ import annotations

import errno
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import own_signal_handlers
import torch

from fake_layouts import write_ped2_layout
from utils import FFPError

ROOT = Path(__file__).resolve().parents[1]
LATEST = "ped2_latest.pth"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """A data root holding a tiny ped2-layout dataset: 17 training windows, 2 labelled test videos."""
    root = tmp_path_factory.mktemp("data")
    write_ped2_layout(root, n_train=2, n_test=2, n_frames=12)
    return root




def tiny_args(data_root: Path, out: Path, iters: int, *extra: str) -> list[str]:
    """Tiny training (32×48, g_widths 8,16,32, batch 2) on the fake ped2, no flow, no validation before the end."""
    return ["--dataset", "ped2", "--preset", "tiny", "--flownet", "none", "--device", "cpu",
            "--data_root", str(data_root), "--weights_dir", str(out / "w"), "--log_dir", str(out / "runs"),
            "--iters", str(iters), "--val_interval", "100000", *extra]


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_same_tensors(a: dict, b: dict, what: str) -> None:
    assert a.keys() == b.keys(), what
    for k in a:
        assert torch.equal(a[k], b[k]), f"{what}.{k} differs"


def assert_same_training_state(a: dict, b: dict) -> None:
    """Weights, optimizer moments/steps/hyper-parameters, scheduler (LR) and step of two checkpoints are equal."""
    assert a["step"] == b["step"]
    for net in ("net_g", "net_d"):
        assert_same_tensors(a[net], b[net], net)
    for opt in ("optim_g", "optim_d"):
        assert a[opt]["param_groups"] == b[opt]["param_groups"], f"{opt} hyper-parameters/LR differ"
        assert a[opt]["state"].keys() == b[opt]["state"].keys()
        for index in a[opt]["state"]:
            assert_same_tensors(a[opt]["state"][index], b[opt]["state"][index], f"{opt}.state[{index}]")
    for sched in ("sched_g", "sched_d"):
        assert a[sched] == b[sched], f"{sched} differs"


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def wait_for_checkpoint(path: Path, proc: subprocess.Popen, timeout: float = 120) -> int:
    """Poll until `path` exists (written atomically, so it is complete); return its step."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"training exited ({proc.returncode}) before its first checkpoint:\n{err[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no checkpoint at {path} after {timeout}s")
        time.sleep(0.01)
    return load(path)["step"]


def popen_train(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "train.py", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


# ----------------------------------------------------------------------------------------------- atomic saves
def _state(value: float) -> dict:
    return {"net_g": {"w": torch.full((3,), value)}, "net_d": {"w": torch.zeros(2)}, "step": int(value),
            "config": {}}


def _fail_replace(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _fail_fsync(fd):
    raise OSError(errno.EIO, "Input/output error")


def _interrupt_fsync(fd):
    raise KeyboardInterrupt


@pytest.mark.parametrize("where, patch, raised", [("os.replace", _fail_replace, FFPError),
                                                  ("os.fsync", _fail_fsync, FFPError),
                                                  ("os.fsync", _interrupt_fsync, KeyboardInterrupt)],
                         ids=["replace-fails", "write-fails", "interrupted-mid-write"])
def test_crash_mid_save_keeps_previous_checkpoint_and_no_temp_file(tmp_path, monkeypatch, where, patch, raised):
    """save_checkpoint writes a temp file in the same folder, fsyncs, then os.replace: a failure or an interrupt
    at any point leaves the previous checkpoint intact and no temp file behind; an OSError names the file."""
    from checkpoint import save_checkpoint
    path = tmp_path / LATEST
    save_checkpoint(path, _state(1.0))
    monkeypatch.setattr(os, where.split(".")[1], patch)
    with pytest.raises(raised) as info:
        save_checkpoint(path, _state(2.0))
    monkeypatch.undo()
    if raised is FFPError:
        assert str(path) in str(info.value) and "previous file" in str(info.value)
    assert files_in(tmp_path) == [LATEST]
    assert load(path)["step"] == 1 and torch.equal(load(path)["net_g"]["w"], torch.ones(3))


def test_save_refuses_non_finite_weights(tmp_path):
    """A diverged state (NaN weights) never replaces the last good checkpoint, whatever path led to the save."""
    from checkpoint import save_checkpoint
    path = tmp_path / LATEST
    save_checkpoint(path, _state(1.0))
    bad = _state(3.0)
    bad["net_g"]["w"][1] = float("nan")
    with pytest.raises(FFPError, match=r"non-finite weights \(net_g\.w\) at step 3"):
        save_checkpoint(path, bad)
    assert load(path)["step"] == 1 and files_in(tmp_path) == [LATEST]


def test_training_save_failure_is_one_line_and_keeps_previous(data_root, tmp_path, monkeypatch, capsys):
    """The disk fills up at the second save (step 4): one 'error:' line naming the checkpoint, exit 1, and the
    step-2 checkpoint is still there, complete, with no temp file beside it."""
    import train as train_script
    from cli import run_cli
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
    assert load(latest)["step"] == 2 and files_in(tmp_path / "w") == [LATEST]


# ----------------------------------------------------------------------------------------------- signals
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_saves_current_step_and_exits_cleanly(data_root, tmp_path, signum):
    """A real training process gets SIGTERM/SIGINT after its first save (every 2 steps): it finishes the current
    step, saves `latest` at that step, says so, and exits 0 with no traceback."""
    proc = popen_train(*tiny_args(data_root, tmp_path, 100_000, "--save_interval", "2"))
    latest = tmp_path / "w" / LATEST
    seen = wait_for_checkpoint(latest, proc)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err
    state = load(latest)
    assert seen <= state["step"] < 100_000
    assert f"stopped at step {state['step']}" in out
    assert all(torch.isfinite(t).all() for t in state["net_g"].values() if t.is_floating_point())
    assert files_in(tmp_path / "w") == [LATEST]   # no temp file, no 'best' (no validation)


def test_second_signal_exits_at_once():
    """The first SIGTERM only asks the work to stop (StopRequest.signum); a second one leaves at once, as
    cli.Terminated (exit 143 through run_cli), raised from the handler wherever the program is; the previous
    handlers come back when the block ends."""
    from cli import StopRequest, Terminated
    before = signal.getsignal(signal.SIGTERM)
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGTERM)   # delivered to this thread before os.kill returns (POSIX)
        assert stop.signum == signal.SIGTERM
        with pytest.raises(Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):              # the handler runs at a bytecode boundary
                pass
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigkill_then_resume_equals_uninterrupted_run(data_root, tmp_path):
    """kill -9 after the first save (every 3 steps); --resume latest to N=12 steps gives bit-identical weights,
    optimizer and scheduler state to an uninterrupted 12-step run (CPU). At most one save interval is lost:
    the checkpoint on disk is the last save made before the kill."""
    n, killed, straight = 12, tmp_path / "killed", tmp_path / "straight"
    reference = popen_train(*tiny_args(data_root, straight, n, "--save_interval", "3"))
    victim = popen_train(*tiny_args(data_root, killed, 100_000, "--save_interval", "3"))
    latest = killed / "w" / LATEST
    seen = wait_for_checkpoint(latest, victim)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=60)
    assert victim.returncode == -signal.SIGKILL
    saved = load(latest)["step"]
    assert seen <= saved < n and saved % 3 == 0, (seen, saved)
    resumed = subprocess.run([sys.executable, "train.py", *tiny_args(data_root, killed, n, "--resume", "latest",
                                                                      "--save_interval", "3")],
                             cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming at step {saved}" in resumed.stdout
    _, err = reference.communicate(timeout=180)
    assert reference.returncode == 0, err[-2000:]
    assert_same_training_state(load(latest), load(straight / "w" / LATEST))


# ----------------------------------------------------------------------------------------------- exact resume
@pytest.fixture(scope="module")
def resume_runs(data_root, tmp_path_factory):
    """In-process: 6 steps straight, and 3 steps + --resume to 6; the LR drops at step 4 (after the resume).

    Returns (straight checkpoint, resumed checkpoint, batches seen straight, batches seen by the two halves),
    each batch as a digest of its uint8 clip.
    """
    import train as train_script
    real_step = train_script.train_step
    seen: list[str] = []

    def recording_step(*args, **kwargs):
        clip = next(a for a in args if torch.is_tensor(a) and a.dtype == torch.uint8)
        seen.append(hashlib.sha1(clip.numpy().tobytes()).hexdigest())
        return real_step(*args, **kwargs)

    out = tmp_path_factory.mktemp("resume")
    extra = ("--save_interval", "3", "--lr_drop_steps", "4")
    patch = pytest.MonkeyPatch()
    patch.setattr(train_script, "train_step", recording_step)
    try:
        with own_signal_handlers():
            assert train_script.main(tiny_args(data_root, out / "straight", 6, *extra)) == 0
            straight_batches, seen[:] = list(seen), []
            assert train_script.main(tiny_args(data_root, out / "split", 3, *extra)) == 0
            assert train_script.main(tiny_args(data_root, out / "split", 6, *extra, "--resume", "latest")) == 0
    finally:
        patch.undo()
    return (load(out / "straight" / "w" / LATEST), load(out / "split" / "w" / LATEST),
            straight_batches, list(seen), out)


def test_resume_is_exact_weights_optimizer_lr_and_step(resume_runs):
    straight, resumed, *_ = resume_runs
    assert resumed["step"] == 6
    assert_same_training_state(straight, resumed)
    base_lr = straight["optim_g"]["param_groups"][0]["initial_lr"]
    assert straight["optim_g"]["param_groups"][0]["lr"] == pytest.approx(base_lr * 0.1)   # the drop at 4 applied
    assert resumed["sched_g"]["last_epoch"] == 6


def test_resume_sees_the_same_data_order(resume_runs):
    _, _, straight_batches, split_batches, _ = resume_runs
    assert len(straight_batches) == len(split_batches) == 6
    assert split_batches == straight_batches
    assert len(set(straight_batches)) > 1


# ----------------------------------------------------------------------------------------------- evaluation output
def test_evaluation_never_overwrites_silently(resume_runs, data_root, tmp_path, capsys):
    """A second evaluation of the same checkpoint goes to a numbered sibling and leaves the first byte-identical;
    only --overwrite replaces the folder (no new sibling, the others untouched)."""
    import eval as eval_script
    ckpt = resume_runs[4] / "straight" / "w" / LATEST
    results = tmp_path / "results"
    argv = ["--trained_model", str(ckpt), "--data_root", str(data_root), "--out_dir", str(results),
            "--num_workers", "0", "--device", "cpu"]

    def snapshot(folder: Path) -> dict:
        return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}

    assert eval_script.main(argv) == 0
    first = results / "ped2_ped2_latest"
    (first / "my_notes.txt").write_text("kept unless --overwrite")
    before = snapshot(first)
    assert eval_script.main(argv) == 0
    second = results / "ped2_ped2_latest_2"
    assert snapshot(first) == before and (second / "metrics.json").is_file()
    second_files = snapshot(second)
    assert eval_script.main([*argv, "--overwrite"]) == 0
    assert sorted(p.name for p in results.iterdir() if not p.name.startswith(".")) == \
        ["ped2_ped2_latest", "ped2_ped2_latest_2"]
    assert not (first / "my_notes.txt").exists() and (first / "metrics.json").is_file()
    assert snapshot(second) == second_files
    assert not [p for p in results.iterdir() if p.name.startswith(".")], "temp folders left behind"
