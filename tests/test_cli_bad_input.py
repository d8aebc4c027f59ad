"""Bad input -> one clear error line, a non-zero exit, nothing half-written (issue 6).

Each CASE below builds its own bad input in a fresh folder and names the command line to run
(`train.py …` / `eval.py …` from the repository root); every case asserts the same contract:
  - exit status != 0;
  - stderr is exactly one non-empty line, starting with 'error:', naming the offending path/value, no traceback;
  - no output file appeared: no checkpoint, no result folder (a training run that already started may leave
    its log folder, never a checkpoint).
Every case runs in its own process with its own stdout/stderr file descriptors and real exit status. Starting
Python + torch + sklearn costs ~3 s per process on 2 cores, too slow for ~40 cases, so most cases run in a
child forked from a "zygote" process that imported those libraries once and then executes the script as
`__main__` exactly as `python train.py …` would (runpy); the cases marked `real=True` (one or more per script
and failure kind, including the DataLoader-worker ones) run as plain `sys.executable train.py …` subprocesses.
run_cli's own translation of exceptions into one line is checked in-process at the end.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io
import torch
from fake_layouts import write_ped2_layout, write_shanghaitech_layout
from helpers import ROOT, own_signal_handlers

PARALLEL = 2  # cases at a time (one zygote each): the machine has 2 cores
TIMEOUT_S = 180


# ----------------------------------------------------------------------------------------------- helpers
@dataclass
class Ctx:
    """What a case's setup gets: its own empty folder, a shared valid dataset root (fake ped2; read only) and a
    tiny checkpoint trained on it (read only)."""

    dir: Path
    good: Path
    ckpt: Path


@dataclass
class Case:
    """One bad input: `setup(ctx)` writes it and returns (argv after the python executable, needles).

    needles: strings the error line must contain (the offending path/value). check: extra assertions on
    (ctx, completed process). logs_ok: the run got as far as starting its tensorboard log (worker errors).
    """

    id: str
    setup: Callable[[Ctx], tuple[list[str], list[str]]]
    check: Callable[[Ctx, subprocess.CompletedProcess], None] | None = None
    logs_ok: bool = False
    xfail: str | None = None
    real: bool = False  # a plain `python script.py` subprocess, no zygote
    argv: list[str] = field(default_factory=list)  # filled in by the `outcomes` fixture
    needles: list[str] = field(default_factory=list)


CASES: list[Case] = []


def case(id: str, check=None, logs_ok: bool = False, xfail: str | None = None, real: bool = False):
    """Register the decorated setup function as a Case."""

    def register(setup):
        CASES.append(Case(id, setup, check, logs_ok, xfail, real))
        return setup

    return register


def train_argv(ctx: Ctx, *extra: str, dataset: str = "ped2", data_root: Path | None = None) -> list[str]:
    """A 2-step tiny training run writing only into ctx.dir (w/ and runs/)."""
    return [
        "train.py",
        "--dataset",
        dataset,
        "--preset",
        "tiny",
        "--iters",
        "2",
        "--flownet",
        "none",
        "--data_root",
        str(data_root if data_root is not None else ctx.dir / "data"),
        "--weights_dir",
        str(ctx.dir / "w"),
        "--log_dir",
        str(ctx.dir / "runs"),
        "--val_interval",
        "100",
        "--device",
        "cpu",
        *extra,
    ]


def eval_argv(
    ctx: Ctx, *extra: str, ckpt: Path | None = None, dataset: str = "ped2", data_root: Path | None = None
) -> list[str]:
    """Evaluate a checkpoint (default: the shared tiny one) into ctx.dir/results."""
    return [
        "eval.py",
        "--trained_model",
        str(ckpt or ctx.ckpt),
        "--dataset",
        dataset,
        "--data_root",
        str(data_root if data_root is not None else ctx.dir / "data"),
        "--out_dir",
        str(ctx.dir / "results"),
        "--num_workers",
        "0",
        "--device",
        "cpu",
        *extra,
    ]


def fake_ped2(ctx: Ctx, **kw) -> dict:
    """A tiny FFP-layout Ped2 under ctx.dir/data: 1 training and 1 test video of 6 frames (24×36 JPEG) by default."""
    kw = {"n_train": 1, "n_test": 1, "n_frames": 6, **kw}
    return write_ped2_layout(ctx.dir / "data", **kw)


def frame(info: dict, split: str, video: str, index: int) -> Path:
    """Path of frame `index` of `video` in a fake ped2 layout."""
    return info["dataset_dir"] / split / "frames" / video / f"{index:03d}.jpg"


def truncate(path: Path) -> Path:
    """Keep the first half of a file, as an interrupted copy or download would."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def files_under(folder: Path) -> set[Path]:
    return set(folder.rglob("*")) if folder.exists() else set()  # files and folders


def train_in_process(argv: list[str]) -> int:
    import train as train_script

    with own_signal_handlers():
        return train_script.main(argv)


# A long-lived process that imports the CLIs' libraries once, then per request forks a child that runs
# `script.py argv…` as __main__ with fds 1/2 redirected to files, and reports the child's exit status.
ZYGOTE = r"""
import json, os, runpy, sys, traceback  # python -c in cwd=ROOT: the project is importable
import train, eval  # noqa: F401  (torch, sklearn, tensorboardX, cv2, scipy: imported once, shared by every child)
print("ready", flush=True)
for line in sys.stdin:
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            for fd, name in ((1, job["stdout"]), (2, job["stderr"])):
                os.dup2(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
            sys.argv = list(job["argv"])
            try:
                runpy.run_path(sys.argv[0], run_name="__main__")
                code = 0
            except SystemExit as exc:  # what the interpreter does with sys.exit(x)
                if exc.code is None or isinstance(exc.code, int):
                    code = exc.code or 0
                else:
                    print(exc.code, file=sys.stderr)
            except BaseException:
                traceback.print_exc()
        finally:
            try:
                sys.stdout.flush(); sys.stderr.flush()
            finally:
                os._exit(code)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"status": os.waitstatus_to_exitcode(status)}), flush=True)
"""


class Zygote:
    """Runs CLI invocations in forked children of one pre-imported Python process (see ZYGOTE)."""

    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout.readline().strip() == "ready", "zygote failed to import train/eval"

    def run(self, argv: list[str], workdir: Path) -> subprocess.CompletedProcess:
        out, err = workdir / "zygote.stdout", workdir / "zygote.stderr"
        self.proc.stdin.write(json.dumps({"argv": argv, "stdout": str(out), "stderr": str(err)}) + "\n")
        self.proc.stdin.flush()
        status = json.loads(self.proc.stdout.readline())["status"]
        result = subprocess.CompletedProcess(argv, status, out.read_text(), err.read_text())
        out.unlink()
        err.unlink()
        return result

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def run_real(argv: list[str]) -> subprocess.CompletedProcess:
    """`python script.py argv…` from the repository root, as a user would run it."""
    return subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S)


# ----------------------------------------------------------------------------------------------- 1. data root / layout
@case("data_root_missing", real=True)
def _(ctx):
    return train_argv(ctx, data_root=ctx.dir / "nope"), [str(ctx.dir / "nope"), "does not exist"]


@case("eval_data_root_missing")
def _(ctx):
    return eval_argv(ctx, data_root=ctx.dir / "nope"), [str(ctx.dir / "nope"), "does not exist"]


@case("layout_matches_none")
def _(ctx):
    # frames in <ds>/videos/01/: none of frames/, flat training+testing, or UCSD Train+Test
    video = ctx.dir / "data" / "ped2" / "videos" / "01"
    video.mkdir(parents=True)
    for i in range(6):
        cv2.imwrite(str(video / f"{i:03d}.jpg"), np.zeros((24, 36), np.uint8))
    return train_argv(ctx), [
        "not found under",
        str(ctx.dir / "data"),
        "<dir>/training[/frames|/videos]/",
        "<dir>/training_videos/",
        "<dir>/Train/",
        str(ctx.dir / "data" / "ped2"),
        "UCSDped2",
    ]


# ----------------------------------------------------------------------------------------------- 2. dataset name
@case("unknown_dataset")  # any other name is the user's own data: the message names the folder it looked for
def _(ctx):
    fake_ped2(ctx)
    return train_argv(ctx, dataset="pedestrian3"), [
        "'pedestrian3'",
        "not a built-in benchmark",
        "ped2",
        "ped1",
        "avenue",
        "shanghaitech",
        str(ctx.dir / "data" / "pedestrian3" / "training"),
        "does not exist",
    ]


@case("dataset_name_not_a_folder_name")
def _(ctx):
    return train_argv(ctx, dataset="../ped2"), ["'../ped2'", "built-in benchmark", "folder"]


@case("unknown_preset")
def _(ctx):
    return train_argv(ctx, "--preset", "huge"), ["'huge'", "tiny"]


@case("eval_unknown_dataset")
def _(ctx):
    fake_ped2(ctx)
    return eval_argv(ctx, dataset="pedestrian3"), [
        "'pedestrian3'",
        "not a built-in benchmark",
        str(ctx.dir / "data" / "pedestrian3" / "testing"),  # evaluation reads the test split only
    ]


# ----------------------------------------------------------------------------------------------- 3. videos
@case("video_without_frames")
def _(ctx):
    info = fake_ped2(ctx, n_train=2)
    video = info["dataset_dir"] / "training" / "frames" / "02"
    for f in video.iterdir():
        f.unlink()
    return train_argv(ctx), [str(video), "no frames"]


@case("video_shorter_than_window")
def _(ctx):
    info = fake_ped2(ctx, n_train=2)
    for i in range(3, 7):  # video 02 had 7 frames: keep 000..002
        frame(info, "training", "02", i).unlink()
    return train_argv(ctx), [str(info["dataset_dir"] / "training" / "frames" / "02"), "3 frames", "5-frame window"]


# ----------------------------------------------------------------------------------------------- 4. bad images
@case("train_zero_byte_frame")  # decoded up front into the frame cache (main process)
def _(ctx):
    bad = frame(fake_ped2(ctx), "training", "01", 2)
    bad.write_bytes(b"")
    return train_argv(ctx), [str(bad), "empty"]


@case("train_not_an_image")
def _(ctx):
    bad = frame(fake_ped2(ctx), "training", "01", 2)
    bad.write_text("this is not a JPEG\n")
    return train_argv(ctx), [str(bad), "not a valid image"]


def _failed_in_training_loop(ctx, proc):
    """The frame cache is off, so the bad frame is only met by a DataLoader worker once the loop has started (the
    start-up printout came), before step 1: the run's config.json, event file and the folders it created are
    removed again — a failed run leaves no half-written run folder."""
    assert "FFP training on ped2" in proc.stdout
    assert not (ctx.dir / "runs").exists() and not (ctx.dir / "w").exists()


@case("train_truncated_jpeg_in_worker", real=True, check=_failed_in_training_loop)
def _(ctx):  # every window of the 6-frame video holds frame 2
    bad = truncate(frame(fake_ped2(ctx), "training", "01", 2))
    return train_argv(ctx, "--num_workers", "2", "--cache_frames", "false"), [str(bad), "truncated JPEG"]


@case("train_zero_byte_in_worker", check=_failed_in_training_loop)
def _(ctx):
    bad = frame(fake_ped2(ctx), "training", "01", 3)
    bad.write_bytes(b"")
    return train_argv(ctx, "--num_workers", "2", "--cache_frames", "false"), [str(bad), "empty"]


@case("eval_truncated_jpeg_in_worker", real=True)
def _(ctx):
    bad = truncate(frame(fake_ped2(ctx), "testing", "01", 3))
    argv = eval_argv(ctx)
    argv[argv.index("--num_workers") + 1] = "2"
    return argv, [str(bad), "truncated JPEG"]


@case("eval_zero_byte_frame")
def _(ctx):
    bad = frame(fake_ped2(ctx), "testing", "01", 4)
    bad.write_bytes(b"")
    return eval_argv(ctx), [str(bad), "empty"]


# ----------------------------------------------------------------------------------------------- 6. labels
@case("label_variable_misnamed")  # neither 'gt', a common name, nor the file's only variable
def _(ctx):
    info = fake_ped2(ctx)
    mat = info["dataset_dir"] / "ped2.mat"
    scipy.io.savemat(str(mat), {"foo": np.zeros((1, 6)), "bar": np.ones(2)})
    return train_argv(ctx), [str(mat), "'gt'", "foo", "bar"]


@case("label_count_differs_from_frames")
def _(ctx):
    info = write_shanghaitech_layout(ctx.dir / "data", n_train=1, n_test=1, n_frames=8)
    video, n = next(iter(info["test_videos"].items()))
    np.save(info["dataset_dir"] / "testing" / "test_frame_mask" / f"{video}.npy", np.zeros(n - 2, np.int64))
    return train_argv(ctx, dataset="shanghaitech"), [
        f"video {video}",
        f"{n - 2} labels",
        f"{n} frames",
        f"test_frame_mask/{video}.npy",
    ]


@case("label_interval_beyond_video")
def _(ctx):
    info = fake_ped2(ctx)
    gt = np.empty(1, dtype=object)
    gt[0] = np.array([[2], [40]], dtype=np.uint16)  # the test video has 6 frames
    scipy.io.savemat(str(info["dataset_dir"] / "ped2.mat"), {"gt": gt})
    return train_argv(ctx), ["test video 01", "[2, 40]", "6 frames", "ped2.mat"]


# ----------------------------------------------------------------------------------------------- 7-9. checkpoints
def _bad_checkpoint(ctx: Ctx, kind: str) -> Path:
    path = ctx.dir / f"{kind}.pth"
    if kind == "truncated":
        data = ctx.ckpt.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "text":
        path.write_text("not a checkpoint\n")
    elif kind == "empty":
        path.write_bytes(b"")
    return path


for _kind in ("truncated", "text", "empty"):

    def _eval_setup(ctx, kind=_kind):
        fake_ped2(ctx)
        path = _bad_checkpoint(ctx, kind)
        return eval_argv(ctx, ckpt=path), [str(path), "truncated, damaged or not a checkpoint"]

    def _resume_setup(ctx, kind=_kind):
        path = _bad_checkpoint(ctx, kind)
        return train_argv(ctx, "--resume", str(path)), [str(path), "truncated, damaged or not a checkpoint"]

    case(f"eval_checkpoint_{_kind}")(_eval_setup)
    case(f"resume_checkpoint_{_kind}")(_resume_setup)


def _mismatched_checkpoint(ctx: Ctx, widths: tuple[int, ...]) -> Path:
    """The shared checkpoint (config: g_widths 8,16,32) with net_g replaced by a generator of other `widths`."""
    from model import Generator

    state = torch.load(ctx.ckpt, map_location="cpu", weights_only=True)
    state["net_g"] = Generator(4, widths).state_dict()
    path = ctx.dir / "other_widths.pth"
    torch.save(state, path)
    return path


@case("eval_checkpoint_other_architecture")
def _(ctx):
    fake_ped2(ctx)
    path = _mismatched_checkpoint(ctx, (16, 32, 64))
    return eval_argv(ctx, ckpt=path), [str(path), "does not fit", "shape mismatch", "(16,"]


@case("resume_checkpoint_other_architecture")
def _(ctx):
    path = _mismatched_checkpoint(ctx, (8, 16, 32, 64))  # one more U-Net level: missing/unexpected tensors
    return train_argv(ctx, "--resume", str(path), data_root=ctx.good), [
        "--resume generator",
        "does not fit",
        "unexpected",
    ]


class _Exploit:
    """Unpickling this runs a shell command (what a malicious checkpoint would do)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _malicious_checkpoint(ctx: Ctx) -> Path:
    state = torch.load(ctx.ckpt, map_location="cpu", weights_only=True)
    state["net_g"]["payload"] = _Exploit(ctx.dir / "PWNED")
    path = ctx.dir / "malicious.pth"
    torch.save(state, path)
    return path


def _not_executed(ctx, proc):
    assert not (ctx.dir / "PWNED").exists(), "the pickled payload was executed"


@case("eval_checkpoint_runs_code", check=_not_executed, real=True)
def _(ctx):
    fake_ped2(ctx)
    path = _malicious_checkpoint(ctx)
    return eval_argv(ctx, ckpt=path), [str(path), "refused by safe loading", "posix.system"]


@case("resume_checkpoint_runs_code", check=_not_executed, real=True)
def _(ctx):
    path = _malicious_checkpoint(ctx)
    return train_argv(ctx, "--resume", str(path)), [str(path), "refused by safe loading", "posix.system"]


# ----------------------------------------------------------------------------------------------- 10. non-finite loss
@case("nan_before_first_save", logs_ok=True)  # training had started: its logs stay, no checkpoint
def _(ctx):
    fake_ped2(ctx)
    return train_argv(ctx, "--lr_g", "1e30", "--iters", "30", "--save_interval", "10", "--log_interval", "1"), [
        "non-finite loss",
        "step",
        "no checkpoint",
    ]


# ----------------------------------------------------------------------------------------------- 11. unwritable output
def _not_started(ctx, proc):
    assert "FFP training on" not in proc.stdout, "training started before the output folder was checked"


@case("weights_dir_under_a_file", check=_not_started, real=True)
def _(ctx):
    fake_ped2(ctx)
    blocker = ctx.dir / "a_file"
    blocker.write_text("")
    return train_argv(ctx, "--weights_dir", str(blocker / "w")), ["--weights_dir", str(blocker / "w"), "not writable"]


@case("log_dir_in_proc", check=_not_started)  # /proc refuses new files even to root
def _(ctx):
    fake_ped2(ctx)
    return train_argv(ctx, "--log_dir", "/proc/ffp_runs"), ["--log_dir", "/proc/ffp_runs", "not writable"]


def _not_scored(ctx, proc):
    assert not re.search(r"scored \d+ frames", proc.stdout)  # it stopped before the prediction pass


@case("eval_out_dir_under_a_file", check=_not_scored)
def _(ctx):
    fake_ped2(ctx)
    blocker = ctx.dir / "a_file"
    blocker.write_text("")
    argv = eval_argv(ctx)
    argv[argv.index("--out_dir") + 1] = str(blocker / "results")
    return argv, ["--out_dir", str(blocker / "results"), "not writable"]


# ----------------------------------------------------------------------------------------------- 12. flags
for _flags, _needles in [
    (("--iters", "-5"), ["--iters", "-5"]),
    (("--batch_size", "0"), ["--batch_size", "0"]),
    (("--height", "50"), ["--height", "50", "divisible by 4"]),
    (("--g_widths", "8,16,32,64", "--width", "36"), ["divisible by 8", "36"]),
    (("--lr_g", "-1"), ["--lr_g", "-1"]),
    (("--num_workers", "-2"), ["--num_workers", "-2"]),
    (("--flownet", "pwc"), ["--flownet", "'pwc'", "classical"]),
]:
    case("flag " + " ".join(_flags))(lambda ctx, f=_flags, n=_needles: (train_argv(ctx, *f), n))

case("eval flag --eval_batch_size 0")(
    lambda ctx: (eval_argv(ctx, "--eval_batch_size", "0"), ["--eval_batch_size", "0"])
)
case("flag --iters abc")(lambda ctx: (train_argv(ctx, "--iters", "abc"), ["--iters", "'abc'"]))
case("eval flag --smooth_sigma abc")(lambda ctx: (eval_argv(ctx, "--smooth_sigma", "abc"), ["--smooth_sigma", "'abc'"]))


# ----------------------------------------------------------------------------------------------- runner
@pytest.fixture(scope="module")
def good_data(tmp_path_factory) -> Path:
    """A valid data root: fake ped2 with 2 training and 2 test videos of 8-9 frames."""
    root = tmp_path_factory.mktemp("good_data")
    write_ped2_layout(root, n_train=2, n_test=2, n_frames=8)
    return root


@pytest.fixture(scope="module")
def tiny_checkpoint(good_data, tmp_path_factory) -> Path:
    """A real 2-step training checkpoint (tiny preset: 32×48, g_widths 8,16,32) of ped2, trained in-process once."""
    out = tmp_path_factory.mktemp("tiny_ckpt")
    rc = train_in_process(
        [
            "--dataset",
            "ped2",
            "--preset",
            "tiny",
            "--iters",
            "2",
            "--flownet",
            "none",
            "--data_root",
            str(good_data),
            "--weights_dir",
            str(out / "w"),
            "--log_dir",
            str(out / "runs"),
            "--val_interval",
            "100",
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    return out / "w" / "ped2_latest.pth"


@pytest.fixture(scope="module")
def outcomes(request, good_data, tiny_checkpoint, tmp_path_factory) -> dict:
    """{case id: (ctx, completed process, files before the run)} for every case this session selected."""
    wanted = {
        item.callspec.params["bad_input"].id
        for item in request.session.items
        if getattr(item, "module", None) is request.module
        and hasattr(item, "callspec")
        and "bad_input" in item.callspec.params
    }
    jobs = []
    for c in CASES:
        if c.id not in wanted:
            continue
        ctx = Ctx(tmp_path_factory.mktemp("case") / "work", good_data, tiny_checkpoint)
        ctx.dir.mkdir()
        c.argv, c.needles = c.setup(ctx)
        jobs.append((c, ctx, files_under(ctx.dir)))

    zygotes = [Zygote() for _ in range(PARALLEL)]
    free = list(zygotes)

    def run(job):
        c, ctx, before = job
        if c.real:
            return c.id, (ctx, run_real(c.argv), before)
        zygote = free.pop()  # list.pop/append are atomic: each thread holds its own zygote
        try:
            # zygote output files live outside ctx.dir so the 'no new files' check is not disturbed
            return c.id, (ctx, zygote.run(c.argv, ctx.dir.parent), before)
        finally:
            free.append(zygote)

    try:
        with ThreadPoolExecutor(PARALLEL) as pool:
            return dict(pool.map(run, jobs))
    finally:
        for zygote in zygotes:
            zygote.close()


def _params():
    for c in CASES:
        marks = [pytest.mark.xfail(reason=c.xfail, strict=True)] if c.xfail else []
        yield pytest.param(c, id=c.id, marks=marks)


@pytest.mark.slow
@pytest.mark.parametrize("bad_input", list(_params()))
def test_bad_input_is_one_clear_error_line(bad_input: Case, outcomes):
    ctx, proc, before = outcomes[bad_input.id]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    context = f"{' '.join(bad_input.argv)}\nexit {proc.returncode}\nstderr:\n{proc.stderr[-3000:]}"
    assert proc.returncode != 0, context
    assert "Traceback" not in proc.stderr, context
    assert len(lines) == 1 and lines[0].startswith("error:") and len(lines[0]) > len("error: "), context
    for needle in bad_input.needles:
        assert needle in lines[0], f"{needle!r} not named in: {lines[0]}"
    new = files_under(ctx.dir) - before
    if bad_input.logs_ok:
        new = {p for p in new if p != ctx.dir / "runs" and ctx.dir / "runs" not in p.parents}
    assert not new, f"files or folders written by a failed run: {sorted(map(str, new))}"
    assert not (ctx.dir / "results").exists() or not any((ctx.dir / "results").iterdir())
    if bad_input.check:
        bad_input.check(ctx, proc)


# ----------------------------------------------------------------------------------------------- run_cli
def _raise(exc):
    def main(argv):
        raise exc

    return main


@pytest.mark.parametrize(
    "exc, status, line",
    [
        (
            OSError(28, "No space left on device", "/data/w/ped2_latest.pth"),
            1,
            "error: /data/w/ped2_latest.pth: No space left on device",
        ),
        (KeyboardInterrupt(), 130, "error: interrupted"),
        (
            RuntimeError(
                "Caught FFPError in DataLoader worker process 1.\nOriginal Traceback (most recent call last):\n"
                '  File "dataset.py", line 1, in read_frame\nerrors.FFPError: cannot read image /d/001.jpg: '
                "truncated JPEG"
            ),
            1,
            "error: cannot read image /d/001.jpg: truncated JPEG",
        ),
    ],
    ids=["os-error", "ctrl-c", "worker-error"],
)
def test_cli_user_errors_are_one_line(capsys, exc, status, line):
    """run_cli: an OSError naming a file (disk full, unwritable folder), Ctrl-C before training's own handler,
    and an FFPError re-raised from a DataLoader worker each become one 'error:' line; --debug re-raises."""
    from cli import run_cli

    assert run_cli(_raise(exc), []) == status
    assert capsys.readouterr().err == line + "\n"
    with pytest.raises(type(exc)):
        run_cli(_raise(exc), ["--debug"])
