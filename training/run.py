"""The bookkeeping of a training run, so that train.py reads as the algorithm.

Due           which of log / validate / save are due after a step
Checkpointer  the run's checkpoint dict, in one place, written to <weights_dir>/<dataset>_{latest,best}.pth
RunOutputs    what rank 0 alone writes: the run lock, the start-up printout, config.json, the TensorBoard log,
              validation results and checkpoints; a run that fails before step 1 leaves nothing behind
NoOutputs     the same interface for the other DDP ranks, writing nothing, so the loop never asks its rank
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import torch

from checkpoint import FLOW_LOSS_UNITS, FORMAT_VERSION, save_checkpoint
from config import CLASSICAL_LAMBDA_OP, DATASET_DEFAULTS, RIFE_LAMBDA_OP, Config
from evaluation.metrics import inverted_labels_note
from training.distributed import DistInfo
from training.resume import RunState, Start, upgrade_notes
from training.runlog import RunLock, RunLog, RunTraces, remove_stale_temp_files
from training.step import Nets, split_clip
from utils.files import atomic_write_text, check_writable
from utils.progress import PlainLines, Progress
from utils.threads import recheck_threads


@dataclass(frozen=True)
class Due:
    """What is due after a step: a loss log entry (also at every save), a validation, a checkpoint; `end`: the
    run's last step, at which all three are due."""

    log: bool
    validate: bool
    save: bool
    end: bool

    @classmethod
    def after(cls, step: int, cfg: Config) -> Due:
        end = step == cfg.iters
        save = step % cfg.save_interval == 0 or end
        return cls(
            log=step % cfg.log_interval == 0 or save, validate=step % cfg.val_interval == 0 or end, save=save, end=end
        )


@dataclass
class Checkpointer:
    """The run's checkpoints: the plain modules' weights (interchangeable between DDP and single-process runs),
    optimizers, LR schedules, RNG, validation history, config, and what resume, eval and detect.py need."""

    cfg: Config
    nets: Nets
    schedulers: list
    flow_name: str
    fingerprint: str  # of the training data (training.resume.data_fingerprint)
    start: Start
    started: float  # time.time() when this session started
    fps: float | None = None  # training footage frame rate (footage_fps), stored: detect.py resamples faster input
    last_saved: int | None = field(init=False)  # step of the newest 'latest' on disk written by this run

    def __post_init__(self) -> None:
        self.last_saved = self.start.resume["step"] if self.start.resume else None  # a resume starts from one

    def path(self, kind: str) -> Path:
        """<weights_dir>/<dataset>_<kind>.pth, kind 'latest' or 'best'."""
        return Path(self.cfg.weights_dir) / f"{self.cfg.dataset}_{kind}.pth"

    def state(self, run: RunState, kind: str) -> dict:
        """The checkpoint dict at `run.step` (keys documented in checkpoint/files.py)."""
        prior_seconds = float(self.start.resume.get("train_seconds", 0.0)) if self.start.resume else 0.0
        state = {
            "format_version": FORMAT_VERSION,
            "net_g": self.nets.g.state_dict(),
            "net_d": self.nets.d.state_dict(),
            "optim_g": self.nets.opt_g.state_dict(),
            "optim_d": self.nets.opt_d.state_dict(),
            "sched_g": self.schedulers[0].state_dict(),
            "sched_d": self.schedulers[1].state_dict(),
            "step": run.step,
            "config": self.cfg.to_dict(),
            "rng": {"torch": torch.get_rng_state()},
            "history": run.history,
            "flownet": {
                "name": self.flow_name,
                "checkpoint": self.cfg.flownet_ckpt,
                "loss_units": FLOW_LOSS_UNITS,
                **getattr(self.nets.flow, "describe", dict)(),  # what else defines its output (IFNet: scales, …)
            },
            "selected_with_test_labels": kind == "best",
            "data_fingerprint": self.fingerprint,
            # wall-clock seconds of all sessions of this run so far (setup, validation and saves included)
            "train_seconds": prior_seconds + time.time() - self.started,
            "fps": self.fps,
        }
        if self.start.init:
            state["init_from"] = self.start.source
        return state

    def save(self, run: RunState, kind: str, psnr_stats: dict | None = None) -> None:
        """Write the `kind` checkpoint atomically; `psnr_stats`: the training PSNR statistics stored with a
        completed run's final save (detect.py --mode stream normalises with them)."""
        state = self.state(run, kind)
        if psnr_stats is not None:
            state["psnr_stats"] = psnr_stats
        save_checkpoint(self.path(kind), state)
        if kind == "latest":
            self.last_saved = run.step


class NoOutputs:
    """A DDP rank other than 0: it trains, and writes, validates and saves nothing."""

    validates = False  # whether this rank runs the validations
    writes = False  # whether this rank writes checkpoints
    checkpointer: Checkpointer | None = None

    def __enter__(self) -> NoOutputs:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def begin(
        self, printout: str, checkpointer: Checkpointer, run: RunState, can_validate: bool, label_source: str = ""
    ) -> None:
        """Rank 0 prints, writes config.json and opens its log here; `label_source` (DatasetFiles.label_source)
        is named if a validation AUC falls below 0.5."""

    def trained(self) -> None:
        """After each step: rank 0 notes that the run now has trained steps to keep."""

    def log_losses(self, values: dict[str, float], lr_g: float, step: int, progress: Progress) -> None:
        """Rank 0 logs the step's losses."""

    def record_validation(self, run: RunState, auc: float, nets: Nets, clip: torch.Tensor, progress: Progress) -> None:
        """Rank 0 logs a validation and saves 'best' when it improves."""

    def save_latest(self, run: RunState, psnr_stats: dict | None = None) -> None:
        """Rank 0 saves 'latest'."""

    def save_on_stop(self, run: RunState, stopped_by: int, progress: Progress) -> None:
        """Rank 0 saves 'latest' where a stop request stopped the run, and says so."""

    def finish(self, run: RunState, first_step: int, seconds: float) -> None:
        """Rank 0 closes its log and prints where the checkpoints are."""


class RunOutputs(NoOutputs):
    """Rank 0's outputs. `with RunOutputs(cfg)`: checks the weights and log folders are writable, takes the run
    lock (RunLock), removes temp files a killed save left; on leaving, releases the lock, and when the run failed
    before step 1 removes what it wrote (RunTraces) and the folders it created."""

    def __init__(self, cfg: Config):
        self.weights_dir, self.run_dir = Path(cfg.weights_dir), Path(cfg.log_dir) / f"{cfg.dataset}"
        self.dataset = cfg.dataset
        self.traces = RunTraces([self.weights_dir, self.run_dir], self.run_dir)
        self.lock: RunLock | None = None
        self.log: RunLog | None = None
        self.validates = False
        self.label_source, self.inverted_said = "", False  # where test labels come from; the AUC < 0.5 note said
        self.writes = True

    def __enter__(self) -> RunOutputs:
        try:
            check_writable(self.weights_dir, "--weights_dir")
            check_writable(self.run_dir, "--log_dir")
            self.lock = RunLock([self.weights_dir, self.run_dir], self.dataset).acquire()
            self.traces.snapshot()
            for path in remove_stale_temp_files(self.weights_dir, self.dataset):
                print(f"removed {path}, a temp file left by a run killed while saving", flush=True)
        except BaseException:
            self.traces.remove_folders()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        failed = exc_type is not None
        if failed and not self.traces.trained and self.lock is not None:
            self.traces.remove_files()  # failed before step 1; only while holding the lock
        if self.lock is not None:
            self.lock.release()
        if failed:
            self.traces.remove_folders()  # the folders it created, if now empty: no empty run folders left behind

    def begin(
        self, printout: str, checkpointer: Checkpointer, run: RunState, can_validate: bool, label_source: str = ""
    ) -> None:
        print(printout, flush=True)
        self.label_source, self.inverted_said = label_source, False
        atomic_write_text(self.run_dir / "config.json", json.dumps(checkpointer.cfg.to_dict(), indent=2))
        # The checkpoint holds everything logged up to its step; a killed run's later events are dropped.
        resumed = checkpointer.start.resume is not None
        self.log = RunLog(self.run_dir, purge_step=run.step + 1 if resumed else None)
        self.checkpointer = checkpointer
        self.validates = can_validate

    def trained(self) -> None:
        self.traces.trained = True

    @property
    def _log(self) -> RunLog:
        assert self.log is not None, "RunOutputs.begin opens the log"
        return self.log

    @property
    def _checkpoints(self) -> Checkpointer:
        assert self.checkpointer is not None, "RunOutputs.begin sets the checkpointer"
        return self.checkpointer

    def log_losses(self, values: dict[str, float], lr_g: float, step: int, progress: Progress) -> None:
        for k, v in values.items():
            self._log.scalar(f"train/{k}", v, step)
        self._log.scalar("train/lr_g", lr_g, step)
        progress.set_postfix({k: f"{values[k]:.4g}" for k in ("g_total", "int", "psnr") if k in values})

    def record_validation(self, run: RunState, auc: float, nets: Nets, clip: torch.Tensor, progress: Progress) -> None:
        improved = run.best_auc is None or auc > run.best_auc
        self._log.scalar("val/micro_auc", auc, run.step)
        log_images(self._log, nets, clip, run.step)
        progress.write(f"step {run.step}: validation micro-AUC {auc:.4f} (test labels; used only to pick 'best')")
        inverted = inverted_labels_note(auc, "validation micro-AUC", self.label_source)
        if inverted and not self.inverted_said:  # said once a run
            self.inverted_said = True
            progress.write(f"note: {inverted}; 'best' keeps the highest AUC, which such labels make the worst model")
        run.history.append({"step": run.step, "val_auc": auc})
        if improved:
            self._save(run, "best")

    def save_latest(self, run: RunState, psnr_stats: dict | None = None) -> None:
        self._save(run, "latest", psnr_stats)

    def save_on_stop(self, run: RunState, stopped_by: int, progress: Progress) -> None:
        progress.write(
            f"signal {stopped_by}: saving a checkpoint at step {run.step}, then stopping (send again to exit at once)"
        )
        if self._checkpoints.last_saved != run.step:  # a stop right after a regular save has nothing new to write
            self._save(run, "latest")
        print(f"stopped at step {run.step}; resume with --resume latest", flush=True)

    def _save(self, run: RunState, kind: str, psnr_stats: dict | None = None) -> None:
        self._checkpoints.save(run, kind, psnr_stats)
        self._log.flush()

    def finish(self, run: RunState, first_step: int, seconds: float) -> None:
        self._log.close()
        best = (
            f"best by test-label AUC {run.best_auc:.4f}: {self._checkpoints.path('best')}"
            if run.best_auc is not None
            else "no validation ran, so no 'best' checkpoint"
        )
        print(
            f"trained steps {first_step}..{run.step} in {seconds:.0f}s; latest: {self._checkpoints.path('latest')} "
            f"({best})"
        )


def run_outputs(cfg: Config, info: DistInfo) -> NoOutputs:
    """RunOutputs on rank 0 (or the only process), NoOutputs on the other ranks."""
    return RunOutputs(cfg) if info.is_main else NoOutputs()


def log_images(log: RunLog, nets: Nets, clip: torch.Tensor, step: int) -> None:
    """A few target / prediction / error images of the last batch, on [0, 1]."""
    device = next(nets.g.parameters()).device
    with torch.no_grad():
        inputs, target = split_clip(clip[:4], device)
        pred = nets.g(inputs).float()
    log.images("val/target", ((target + 1) / 2).cpu().numpy(), step)
    log.images("val/prediction", ((pred + 1) / 2).clamp(0, 1).cpu().numpy(), step)
    log.images("val/error", ((pred - target).abs() / 2).mean(1, keepdim=True).clamp(0, 1).cpu().numpy(), step)


def start_printout(
    saver: Checkpointer, files, windows, step: int, device: torch.device, info: DistInfo, skip_validation: str | None
) -> str:
    """The start-up printout: data, device, how the run starts, changes on resume, warnings, the config."""
    cfg, start, flow_name = saver.cfg, saver.start, saver.flow_name
    where = (
        f"resuming at step {step} from {start.source}"
        if start.resume
        else f"from the weights of {start.source} (new run, step 0)"
        if start.init
        else "from scratch"
    )
    ddp = f" ×{info.world_size} processes (batch {cfg.batch_size} each)" if info.enabled else ""
    lines = [
        f"FFP training on {cfg.dataset} ({len(files.train)} videos, {len(windows)} windows, layout "
        f"{files.layout}), device {device}{ddp}, {torch.get_num_threads()} CPU threads, flow estimator "
        f"{flow_name}, {where}"
    ]
    lines += [f"resume: {change} (applied)" for change in start.changes]
    lines += [f"memory format: {saver.nets.memory_format_note}"] if saver.nets.memory_format_note else []
    lines += flow_weight_notes(cfg, flow_name) + upgrade_notes(start)
    lines += [f"warning: {problem} (trained on the frames that decoded)" for problem in windows.decode_problems()]
    lines += [f"labels: {note}" for note in files.notes.lines]
    if skip_validation:
        lines.append(
            f"warning: validation AUC skipped ({skip_validation}); training runs without it: "
            f"'latest' is saved, 'best' is not"
        )
    elif files.label_source:
        lines.append(f"labels: {files.label_source}")
    return "\n".join(lines) + "\n" + cfg.pretty()


def flow_weight_notes(cfg: Config, flow_name: str) -> list[str]:
    """Start-up notes on λ_op: an estimator meeting the other one's weight (docs/method.md "The motion weight")."""
    notes = []
    if flow_name == "ClassicalFlow" and cfg.lambda_op > CLASSICAL_LAMBDA_OP:
        notes.append(
            f"note: λ_op {cfg.lambda_op} with the classical flow estimator: the official values were tuned "
            f"for FlowNet-SD; on Ped2 with this estimator λ_op 2 and 0.1 scored below {CLASSICAL_LAMBDA_OP} "
            f"(the --preset cpu value; docs/method.md 'The motion weight')"
        )
    if flow_name == "IFNetFlow" and cfg.lambda_op > 10 * RIFE_LAMBDA_OP:
        notes.append(
            f"note: λ_op {cfg.lambda_op} with RIFE's IFNet: the official values were tuned for FlowNet-SD; "
            f"{RIFE_LAMBDA_OP} gives this estimator the motion-gradient strength the classical one has at "
            f"{CLASSICAL_LAMBDA_OP} (docs/method.md)"
        )
    if flow_name == "FlowNet2SDFlow" and 0 < cfg.lambda_op <= CLASSICAL_LAMBDA_OP:
        notes.append(
            f"note: λ_op {cfg.lambda_op} is the classical estimator's weight; the official value for "
            f"FlowNet-SD is {DATASET_DEFAULTS['ped2']['lambda_op']} (Ped2)"
        )
    return notes


def step_progress(cfg: Config, step: int, is_main: bool) -> Progress:
    """The training loop's progress display, from `step` to cfg.iters: shown by rank 0 (a line every log_interval
    steps without a terminal). Every rank re-checks its torch threads at each step (`recheck_threads`, --threads 0:
    auto); rank 0 says when the count changed."""
    lines = PlainLines(cfg.log_interval)
    return Progress(cfg.iters, "train", "step", step, lines, enabled=is_main, on_update=recheck_threads)
