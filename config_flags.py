"""Command-line flags made from the Config fields: their types, help texts with the defaults that apply, and the
config a command builds from them.

    add_config_flags(parser, ("data", "machine"))     # one argparse group per flag group (config.GROUPS)
    check_flag_values(args)                           # each value on its own, before torch loads
    cfg = config_from_namespace(args)                 # a new run; command_config(trained, args) for a checkpoint's

Flags default to None, so that a flag not given never overrides a dataset default or a checkpoint's value.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import fields, replace

from config import (
    DATASET_DEFAULTS,
    FIELDS,
    FLAG_GROUPS,
    PRESETS,
    RUNTIME_FIELDS,
    Config,
    build_config,
    custom_defaults,
    dataset_defaults,
    field_problem,
    runtime_defaults,
    show_value,
    validate,
)
from errors import FFPError


def check_flag_values(args: argparse.Namespace, spellings: dict[str, str] | None = None) -> None:
    """`field_problem` for every Config flag given on the command line, so that a bad value answers before torch
    loads (the combined checks run when the whole config is known). FFPError naming the first bad flag, as
    `spellings` writes it where a script has aliases ({'eval_batch_size': '--batch_size/--eval_batch_size'})."""
    for name in FIELDS:
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


def default_text(name: str, presets: bool = True) -> str:
    """Where a training flag's default comes from: the dataset table, the presets (unless `presets` is false),
    or the Config default.

    E.g. 'default: 64 (synthetic), 256 (ped2, ped1, avenue, shanghaitech, own data); --preset cpu: 256, tiny: 32'.
    """
    base = getattr(Config, name, None)
    if name in ("dataset", "preset"):
        return "default: synthetic" if name == "dataset" else "default: none"
    by_dataset = {d: show_value(dataset_defaults(d).get(name, base)) for d in DATASET_DEFAULTS}
    by_dataset["own data"] = show_value(custom_defaults().get(name, base))
    values = list(dict.fromkeys(by_dataset.values()))
    if len(values) == 1:
        text = f"default: {values[0]}"
    else:
        groups = [f"{v} ({', '.join(d for d, dv in by_dataset.items() if dv == v)})" for v in values]
        text = "default by dataset: " + ", ".join(groups)
    by_preset = [f"{p}: {show_value(v[name])}" for p, v in PRESETS.items() if presets and name in v]
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
    for group in groups:
        names = [n for n in FLAG_GROUPS[group] if only is None or n in only]
        if not names:
            continue
        section = parser.add_argument_group(f"{group} settings")
        for name in names:
            _add_flag(
                section,
                FIELDS[name],
                f"{FIELDS[name].metadata['help']} ({defaults(name)})",
                (aliases or {}).get(name, ()),
            )


def _add_flag(parser, f, help_text: str, aliases: tuple[str, ...] = ()) -> None:
    """One Config field as a flag; its type from the field's default (tuples of ints or floats, bools, choices)."""
    default = f.default
    if aliases:  # the other spellings share the field's destination
        parser = _AliasedGroup(parser, aliases)
    if f.name == "preset":  # its choices, the PRESETS table, are defined after Config
        parser.add_argument("--preset", choices=tuple(PRESETS), default=None, help=help_text)
    elif f.metadata.get("choices"):
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
