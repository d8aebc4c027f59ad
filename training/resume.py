"""Continuing a run (--resume) and starting from trained weights (--init_from): what each flag may change.

--resume continues ONE run exactly: flags that change its data or architecture (REFUSED_ON_RESUME) must
match the checkpoint, or the run refuses in one line listing each difference. Optimisation flags
(learning rates, LR schedule, Adam betas, loss weights, iterations, …) are applied: the new learning
rates go into the optimizers' parameter groups and the new milestones into the schedulers, and the
start-up printout lists every change. The config saved in later checkpoints is the one that ran.

Device, threads, workers, scoring batch size and the frame cache (RAM budget, extraction folder) are this
machine's: a resumed run takes them from its own flags and defaults (the dataset's and preset's), not from the
checkpoint, and lists those that differ from the checkpoint's; its data, weights and log folders stay the run's.

--init_from fine-tunes: the generator's (and discriminator's, when it fits) weights of a checkpoint,
fresh optimizers, step 0, and any dataset. The architecture comes from that checkpoint.

Checkpoints of an older format arrive in today's terms (checkpoint/upgrade.py); the start-up printout lists what
was converted.
"""

from __future__ import annotations

import argparse
import hashlib
from collections import Counter
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import torch

from checkpoint import NOTES_KEY, checkpoint_config, load_checkpoint, load_state_strict
from config import FLAG_GROUPS, Config, build_config, runtime_defaults, validate
from config_flags import config_from_namespace
from errors import FFPError
from flownet import resolve_flow_choice
from training.step import Nets

# Flags that define the data a run trains on or the shape of its networks: a resumed run keeps them.
REFUSED_ON_RESUME = (
    "dataset",
    "preset",
    "height",
    "width",
    "in_frames",
    "g_widths",
    "d_widths",
    "batch_size",
    "seed",
    "train_until",
)
ARCHITECTURE = ("height", "width", "in_frames", "g_widths", "d_widths")
SCHEDULE = ("lr_g", "lr_d", "lr_drop_steps", "lr_gamma", "adam_betas")


def explicit_flags(args: argparse.Namespace) -> dict:
    """{config field: value} of the flags given on the command line (add_config_flags defaults them to None)."""
    names = {f.name for f in fields(Config)}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


def _show(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def resume_config(args: argparse.Namespace, state: dict, path: str) -> tuple[Config, list[str]]:
    """(config of the resumed run, 'key: old -> new' lines of the applied changes).

    FFPError listing every flag of REFUSED_ON_RESUME that differs from the checkpoint's config.
    """
    given = explicit_flags(args)
    if given.get("flownet") == "auto":  # on resume, auto is the estimator the run trained with
        del given["flownet"]
    written = checkpoint_config(state)
    # This machine's settings, not those of the machine that wrote the checkpoint (paths stay: the same run).
    machine = runtime_defaults(written.dataset, FLAG_GROUPS["machine"] + FLAG_GROUPS["cache"], written.preset)
    base = replace(written, **machine)
    refused = [
        f"--{k} {_show(v)} (the checkpoint's: {_show(getattr(base, k))})"
        for k, v in given.items()
        if k in REFUSED_ON_RESUME and v != getattr(base, k)
    ]
    if refused:
        raise FFPError(
            f"--resume {path}: {'; '.join(refused)} — a resumed run keeps its data and architecture; "
            f"drop these flags to continue it, or fine-tune a new run with --init_from {path}"
        )
    cfg = Config.from_dict({**base.to_dict(), **given})
    validate(cfg)
    changes = [
        f"{k}: {_show(getattr(base, k))} -> {_show(getattr(cfg, k))}"
        for k in given
        if getattr(cfg, k) != getattr(base, k)
    ]
    changes += [
        f"{k}: {_show(getattr(written, k))} -> {_show(getattr(cfg, k))} (this machine's "
        f"{'flag' if k in given else 'default'}, not the checkpoint's)"
        for k in machine
        if getattr(cfg, k) != getattr(written, k) and k not in given
    ]
    return cfg, changes


def init_config(args: argparse.Namespace, state: dict, path: str) -> Config:
    """Config of a run fine-tuned from `state`: the architecture of the checkpoint, everything else as a new run.

    FFPError when a flag asks for another architecture than the checkpoint's weights have.
    """
    source = checkpoint_config(state)
    given = explicit_flags(args)
    conflicts = [
        f"--{k} {_show(given[k])} (the weights': {_show(getattr(source, k))})"
        for k in ARCHITECTURE
        if k in given and given[k] != getattr(source, k)
    ]
    if conflicts:
        raise FFPError(f"--init_from {path}: {'; '.join(conflicts)} — the weights fit only their own architecture")
    overrides = {**{k: getattr(source, k) for k in ARCHITECTURE}, **given}
    overrides.pop("dataset", None), overrides.pop("preset", None)
    return build_config(args.dataset or source.dataset, args.preset, overrides)


def apply_schedule(cfg: Config, optimizers: list, schedulers: list) -> None:
    """Write cfg's learning rates, Adam betas and LR milestones into restored optimizers and MultiStepLR schedulers.

    The current LR becomes base × gamma^(milestones passed), as if the run had used the new schedule from the
    start. Call it only when a schedule flag changed (SCHEDULE), so a plain resume stays bit-identical.
    """
    for optimizer, scheduler, base_lr in zip(optimizers, schedulers, (cfg.lr_g, cfg.lr_d)):
        scheduler.milestones = Counter(cfg.lr_drop_steps)
        scheduler.gamma = cfg.lr_gamma
        scheduler.base_lrs = [base_lr for _ in optimizer.param_groups]
        passed = sum(1 for m in cfg.lr_drop_steps if m <= scheduler.last_epoch)
        for group in optimizer.param_groups:
            group["initial_lr"] = base_lr
            group["lr"] = base_lr * cfg.lr_gamma**passed
            group["betas"] = tuple(cfg.adam_betas)
        scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]


def data_fingerprint(videos: list, lengths: list[int]) -> str:
    """Short digest of the training videos' names and frame counts: tells whether a resume sees the same data."""
    text = "|".join(f"{v.name}:{n}" for v, n in zip(videos, lengths))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


@dataclass
class Start:
    """How a run starts: its config, and the checkpoint it resumes or initialises from (if any)."""

    cfg: Config
    resume: dict | None = None
    init: dict | None = None
    source: str = ""  # path of that checkpoint
    changes: list[str] = field(default_factory=list)  # flags changed on resume

    def changed(self, names: tuple[str, ...]) -> bool:
        """Whether a resume changed any of the settings `names`."""
        return any(change.split(":")[0] in names for change in self.changes)


TRAINING_KEYS = ("net_d", "optim_g", "optim_d", "sched_g", "sched_d", "step")


def resolve_start(args: argparse.Namespace) -> Start:
    """The run's config from flags, a resumed checkpoint (its data/architecture kept) or --init_from weights."""
    if args.resume and args.init_from:
        raise FFPError("--resume continues a run and --init_from starts a new one from trained weights: give one")
    if args.resume is not None:
        path = (
            Path(args.weights_dir or "weights") / f"{args.dataset or 'synthetic'}_latest.pth"
            if args.resume == "latest"
            else Path(args.resume)
        )
        state = load_checkpoint(path)
        for key in TRAINING_KEYS:
            if key not in state:
                raise FFPError(
                    f"--resume {path}: not a training checkpoint (no '{key}'; generator-only checkpoints "
                    f"can be evaluated, or fine-tuned with --init_from)"
                )
        cfg, changes = resume_config(args, state, str(path))
        return Start(resolved_flow(cfg), resume=state, source=str(path), changes=changes)
    if args.init_from is not None:
        state = load_checkpoint(args.init_from)
        return Start(resolved_flow(init_config(args, state, args.init_from)), init=state, source=args.init_from)
    return Start(resolved_flow(config_from_namespace(args)))


def resolved_flow(cfg: Config) -> Config:
    """`cfg` with --flownet auto replaced by the estimator it stands for on this machine
    (flownet.resolve_flow_choice), so that the saved config names it and a later resume cannot switch estimators
    when weights files appear or go. (A checkpoint's own 'auto' is resolved when it is read: checkpoint/upgrade.py.)
    """
    if cfg.flownet != "auto":
        return cfg
    return replace(cfg, flownet=resolve_flow_choice(cfg.flownet, cfg.flownet_ckpt))


def check_same_data(start: Start, videos: list, lengths: list[int]) -> str:
    """The training data's fingerprint; FFPError when a resumed run finds other data than it trained on."""
    fingerprint = data_fingerprint(videos, lengths)
    if start.resume and start.resume.get("data_fingerprint", fingerprint) != fingerprint:
        raise FFPError(
            f"--resume {start.source}: the training data under --data_root {start.cfg.data_root} differs "
            f"from the data this run trained on ({len(videos)} videos, {sum(lengths)} frames now); "
            f"resume with the original data, or fine-tune with --init_from {start.source}"
        )
    return fingerprint


@dataclass
class RunState:
    """What the training loop carries from step to step, and what a resumed run continues from."""

    step: int = 0
    history: list[dict] = field(default_factory=list)  # [{"step", "val_auc"}] of every validation

    @property
    def best_auc(self) -> float | None:
        """The best validation micro-AUC so far, None before any validation."""
        return max((h["val_auc"] for h in self.history if h.get("val_auc") is not None), default=None)


def restore_run(start: Start, nets: Nets, schedulers: list) -> RunState:
    """Where the loop starts: step 0 with fresh weights; a resumed checkpoint's weights, optimizers, schedules,
    RNG and history (a changed schedule applied); or --init_from's generator (and discriminator) weights."""
    if start.resume:
        state = start.resume
        load_state_strict(nets.g, state["net_g"], "--resume generator")
        load_state_strict(nets.d, state["net_d"], "--resume discriminator")
        nets.opt_g.load_state_dict(state["optim_g"])
        nets.opt_d.load_state_dict(state["optim_d"])
        for scheduler, key in zip(schedulers, ("sched_g", "sched_d")):
            scheduler.load_state_dict(state[key])
        torch.set_rng_state(state["rng"]["torch"])
        if start.changed(SCHEDULE):
            apply_schedule(start.cfg, [nets.opt_g, nets.opt_d], schedulers)
        return RunState(state["step"], list(state.get("history", [])))
    if start.init:
        load_state_strict(nets.g, start.init["net_g"], f"--init_from {start.source} generator")
        if "net_d" in start.init:
            load_state_strict(nets.d, start.init["net_d"], f"--init_from {start.source} discriminator")
    return RunState()


def upgrade_notes(start: Start) -> list[str]:
    """The start-up lines on what reading an older checkpoint format converted (checkpoint/upgrade.py), or none."""
    state = start.resume or start.init or {}
    return [
        f"note: {start.source} (an older checkpoint format) read in today's terms: {n}"
        for n in state.get(NOTES_KEY, [])
    ]
