"""One configuration object for the whole project: per-dataset defaults, then a preset, then CLI flags.

    cfg = build_config(dataset="ped2", overrides={"iters": 500})      # or config_from_args(argv)

The resolved config is printed at start, saved next to the run's logs and inside every checkpoint,
and every consumer (data, networks, losses, training, evaluation) reads it: nothing else carries settings.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import re
from dataclasses import dataclass, field, fields

from utils import FFPError


@dataclass
class Config:
    """Every setting of a run. Image size is (height, width); widths are channels per level."""
    dataset: str = "synthetic"
    data_root: str = "data"
    preset: str | None = None
    # data
    height: int = 256
    width: int = 256
    in_frames: int = 4                      # past frames the generator sees; it predicts frame in_frames+1
    num_workers: int = -1                   # -1 = auto: 2, but on CPU runs only cores torch's threads leave free
    cache_frames: bool = True               # decode every training frame once into RAM (if it fits the budget)
    cache_max_gb: float = 4.0
    cache_dir: str = "cache"                # video files that do not fit in RAM are extracted here once
    train_until: str | None = None          # normal part of each training video: '400' frames or '40s'
    # networks
    g_widths: tuple[int, ...] = (64, 128, 256, 512)
    d_widths: tuple[int, ...] = (128, 256, 512, 512)
    # optimisation (Adam, betas as the official code)
    iters: int = 80_000
    batch_size: int = 4
    lr_g: float = 1e-4
    lr_d: float = 1e-5
    lr_drop_steps: tuple[int, ...] = (7_000,)   # LR ×lr_gamma at each of these steps
    lr_gamma: float = 0.1
    adam_betas: tuple[float, float] = (0.9, 0.999)
    # loss weights λ: intensity, gradient, optical flow, adversarial
    lambda_int: float = 1.0
    lambda_gd: float = 1.0
    lambda_op: float = 2.0
    lambda_adv: float = 0.05
    flownet: str = "auto"                   # auto | flownet2sd | classical | none
    flownet_ckpt: str | None = None
    # bookkeeping
    seed: int = 0
    device: str = "auto"
    threads: int = 0                        # torch CPU threads; 0 = one per core (torch's default)
    weights_dir: str = "weights"
    log_dir: str = "runs"
    save_interval: int = 1_000
    val_interval: int = 1_000
    log_interval: int = 20
    eval_batch_size: int = 16
    # speed of training (none of these changes the method); see bench/README.md for measurements
    channels_last: str = field(default="auto", metadata={"choices": ("auto", "on", "off"), "const": "on"})
    amp: bool = False                       # autocast: bf16 (CUDA, or CPU bf16), fp16 + GradScaler on CUDA only
    amp_dtype: str = field(default="bf16", metadata={"choices": ("bf16", "fp16")})
    compile: bool = False                   # torch.compile G and D (first steps are slow while it compiles)

    def to_dict(self) -> dict:
        """Plain JSON-able dict (tuples become lists), as stored in checkpoints."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict) -> "Config":
        """Inverse of `to_dict`; unknown keys (from newer versions) are ignored, lists become tuples."""
        known = {f.name: f for f in fields(cls)}
        kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in known}
        return cls(**kwargs)

    def pretty(self) -> str:
        """One `key: value` line per setting, for the start-of-run printout."""
        return "\n".join(f"  {k}: {v}" for k, v in dataclasses.asdict(self).items())


# λ_op for the weights-free classical flow estimator. The official λ_op (2 for Ped2) was tuned for FlowNet-SD; with
# the classical estimator it lowered AUC (Ped2 --preset cpu at 1,000 steps: λ_op 2 → 0.900, 0.1 → 0.923,
# 0.005 → 0.935; synthetic quick start: 2 → 0.950, 0.005 → 0.970; README "Optical flow"). 0.005 is the weight
# every classical-flow result before 2026-11-30 was trained with (λ_op 2 on flow then scaled by 1/400).
CLASSICAL_LAMBDA_OP = 0.005

# Official per-dataset hyper-parameters (the authors' released code): 256×256, batch 4, 4 input frames.
DATASET_DEFAULTS: dict[str, dict] = {
    "ped2": dict(lr_g=1e-4, lr_d=1e-5, lr_drop_steps=(7_000,), lambda_int=1.0, lambda_gd=1.0, lambda_op=2.0,
                 lambda_adv=0.05, iters=80_000),
    "ped1": dict(lr_g=1e-4, lr_d=1e-5, lr_drop_steps=(40_000,), lambda_int=1.0, lambda_gd=1.0, lambda_op=0.01,
                 lambda_adv=0.05, iters=80_000),
    # Official note: lambda_int 1 gives 84.9 AUC on Avenue, 0.001 about 85.1.
    "avenue": dict(lr_g=2e-4, lr_d=2e-5, lr_drop_steps=(100_000,), lambda_int=0.001, lambda_gd=1.0,
                   lambda_op=2.0, lambda_adv=0.05, iters=120_000),
    "shanghaitech": dict(lr_g=2e-4, lr_d=2e-5, lr_drop_steps=(50_000,), lambda_int=1.0, lambda_gd=1.0,
                         lambda_op=2.0, lambda_adv=0.05, iters=80_000),
    # Small and fast so the quick start trains and evaluates on 2 CPU cores in minutes, with the same result
    # whether or not a FlowNet2-SD file is present: the classical estimator, with its λ_op.
    "synthetic": dict(height=64, width=96, g_widths=(16, 32, 64, 128), d_widths=(16, 32, 64, 64), flownet="classical",
                      batch_size=8, lr_g=2e-4, lr_d=2e-5, lr_drop_steps=(1_200,), iters=1_500,
                      lambda_int=1.0, lambda_gd=1.0, lambda_op=CLASSICAL_LAMBDA_OP, lambda_adv=0.05,
                      save_interval=500, val_interval=500, eval_batch_size=32),
}

# Any --dataset name that is not a built-in benchmark is the user's own data; it gets the cpu preset's size and
# schedule (see `custom_defaults`), which trains in well under an hour on 2 CPU cores.
CUSTOM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

# Named configurations that change size/width/schedule but not the method.
PRESETS: dict[str, dict] = {
    # Ped2 on 2 CPU cores in under an hour (README "Results"): Ped2's 3:2 aspect at a higher resolution than the
    # paper's 256×256, a quarter of the paper's widths (convolution cost ∝ width², so the step costs about what a
    # 128×192 input at half width does, and the higher resolution scored better in the same time), the
    # weights-free classical flow estimator with its λ_op, 3,000 steps with the LR ×0.1 after 1,000.
    "cpu": dict(height=256, width=384, g_widths=(16, 32, 64, 128), d_widths=(16, 32, 64, 64), batch_size=4,
                lr_g=2e-4, lr_d=2e-5, lr_drop_steps=(1_000,), iters=3_000, flownet="classical",
                lambda_op=CLASSICAL_LAMBDA_OP,
                save_interval=500, val_interval=1_000),
    "tiny": dict(height=32, width=48, g_widths=(8, 16, 32), d_widths=(8, 16, 16, 16), batch_size=2,
                 iters=20, save_interval=10, val_interval=10, log_interval=5, num_workers=0),
}


def custom_defaults() -> dict:
    """Defaults of a user's own dataset: the cpu preset (size, widths, schedule, classical flow and its λ_op) with
    Ped2's official λ for the other losses."""
    return {**DATASET_DEFAULTS["ped2"], **PRESETS["cpu"]}


def dataset_defaults(dataset: str) -> dict:
    """The defaults of a built-in benchmark, or of a custom dataset for any other valid folder name."""
    if dataset in DATASET_DEFAULTS:
        return dict(DATASET_DEFAULTS[dataset])
    if not CUSTOM_NAME.fullmatch(dataset or ""):
        raise FFPError(f"--dataset {dataset!r}: expected a built-in benchmark ({', '.join(DATASET_DEFAULTS)}) or the "
                       f"name of your own dataset folder under --data_root (letters, digits, '_', '-', '.')")
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


def parse_until(text: str | None, flag: str) -> tuple[float, str] | None:
    """A point in a video as `flag` takes it (--train_until, --start): '40s' -> (40.0, 's'); '400' ->
    (400.0, 'frames'); None or '' -> None. FFPError naming the flag when malformed or not positive."""
    if text in (None, ""):
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|sec|frames?)?\s*", str(text))
    if not match or float(match.group(1)) <= 0:
        raise FFPError(f"{flag} must be a positive number of frames ('400') or seconds ('40s'), got {text!r}")
    return float(match.group(1)), "s" if (match.group(2) or "").startswith("s") else "frames"


def validate(cfg: Config) -> None:
    """Refuse nonsensical settings with one clear message naming the flag."""
    positive = ["iters", "batch_size", "height", "width", "save_interval", "val_interval", "log_interval",
                "eval_batch_size", "in_frames"]
    for name in positive:
        if getattr(cfg, name) <= 0:
            raise FFPError(f"--{name} must be a positive integer, got {getattr(cfg, name)}")
    if cfg.threads < 0:
        raise FFPError(f"--threads must be >= 0 (0 = one per core), got {cfg.threads}")
    if cfg.num_workers < -1:
        raise FFPError(f"--num_workers must be >= 0 (or -1 = auto), got {cfg.num_workers}")
    for name in ["lr_g", "lr_d"]:
        if not getattr(cfg, name) > 0:
            raise FFPError(f"--{name} must be > 0, got {getattr(cfg, name)}")
    for name in ["lambda_int", "lambda_gd", "lambda_op", "lambda_adv"]:
        if getattr(cfg, name) < 0:
            raise FFPError(f"--{name} must be >= 0, got {getattr(cfg, name)}")
    if len(cfg.g_widths) < 2 or min(cfg.g_widths) <= 0 or len(cfg.d_widths) != 4 or min(cfg.d_widths) <= 0:
        raise FFPError(f"--g_widths needs >= 2 positive ints and --d_widths exactly 4, got {cfg.g_widths}, "
                       f"{cfg.d_widths}")
    multiple = 2 ** (len(cfg.g_widths) - 1)
    if cfg.height % multiple or cfg.width % multiple:
        raise FFPError(f"--height/--width must be divisible by {multiple} (one halving per U-Net level of "
                       f"--g_widths {cfg.g_widths}), got {cfg.height}×{cfg.width}")
    if min(cfg.height, cfg.width) < 32:
        raise FFPError(f"--height/--width must be >= 32 (the discriminator's 4 strided convs), got "
                       f"{cfg.height}×{cfg.width}")
    for f in fields(cfg):
        choices = f.metadata.get("choices")
        if choices and getattr(cfg, f.name) not in choices:
            raise FFPError(f"--{f.name} must be one of {', '.join(choices)}, got {getattr(cfg, f.name)!r}")
    if cfg.train_until is not None:
        parse_until(cfg.train_until, "--train_until")
    from flownet import FLOW_CHOICES  # local import: flownet imports torch models, config must stay light
    if cfg.flownet not in FLOW_CHOICES:
        raise FFPError(f"--flownet {cfg.flownet!r} is unknown; choose one of {', '.join(FLOW_CHOICES)}")


def _int_tuple(text: str) -> tuple[int, ...]:
    """'16,32,64' -> (16, 32, 64) for width and step lists on the command line."""
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """Flags for every Config field; all default to None so 'not given' never overrides a dataset default.

    A bool flag given bare (`--amp`) means true; a field with `choices` metadata may name a bare value
    (`--channels_last` means 'on').
    """
    parser.add_argument("--dataset", default=None, help="dataset name (default: synthetic)")
    parser.add_argument("--preset", default=None, help=f"named configuration: {', '.join(PRESETS)}")
    types = {int: int, float: float, str: str, bool: _bool}
    for f in fields(Config):
        if f.name in ("dataset", "preset"):
            continue
        default = f.default
        if "choices" in f.metadata:
            const = f.metadata.get("const")
            parser.add_argument(f"--{f.name}", choices=f.metadata["choices"], default=None,
                                nargs="?" if const else None, const=const, help=f"(default {default})")
            continue
        if isinstance(default, bool):
            parser.add_argument(f"--{f.name}", type=_bool, nargs="?", const=True, default=None,
                                help=f"(default {default}; bare flag = true)")
            continue
        if isinstance(default, tuple):
            kind = _int_tuple if all(isinstance(v, int) for v in default) else _float_tuple
        else:
            kind = types.get(type(default), str)
        parser.add_argument(f"--{f.name}", type=kind, default=None, help=f"(default {default})")


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


def config_from_namespace(args: argparse.Namespace, base: Config | None = None) -> Config:
    """Config from parsed flags: `base` (e.g. a checkpoint's config) or dataset defaults, then the flags."""
    overrides = {f.name: getattr(args, f.name, None) for f in fields(Config)
                 if f.name not in ("dataset", "preset")}
    if base is not None:
        values = {**base.to_dict(), **{k: v for k, v in overrides.items() if v is not None}}
        cfg = Config.from_dict(values)
        validate(cfg)
        return cfg
    return build_config(args.dataset or "synthetic", args.preset, overrides)
