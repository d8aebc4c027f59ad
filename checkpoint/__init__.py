"""Checkpoint files (files.py: atomic save, CRC-checked weights_only load, strict state-dict loading) and their
format version with the step that reads older files in today's terms (upgrade.py)."""

from .files import (
    checkpoint_config,
    load_checkpoint,
    load_state_strict,
    model_fps,
    save_checkpoint,
    strip_wrapper_prefixes,
)
from .upgrade import FLOW_LOSS_UNITS, FORMAT_VERSION, NOTES_KEY

__all__ = [
    "FLOW_LOSS_UNITS",
    "FORMAT_VERSION",
    "NOTES_KEY",
    "checkpoint_config",
    "load_checkpoint",
    "load_state_strict",
    "model_fps",
    "save_checkpoint",
    "strip_wrapper_prefixes",
]
