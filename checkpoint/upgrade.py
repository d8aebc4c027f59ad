"""The checkpoint format's version, and the one step that reads an older file in today's terms.

Every checkpoint this code writes carries `format_version` (FORMAT_VERSION). A file without it is format 1: it
may lack fields added since, or state a setting in units that have changed. `upgrade` converts such a state dict
in memory, once, when `load_checkpoint` reads it, so that training, evaluation, detection and export read one
format and none of them handles older files. Format 1 files may have:

- a classical-flow motion loss scaled by 1/400 (their `flownet` entry names ClassicalFlow and has no
  `loss_units`): λ_op is multiplied by 1/400, which is the same loss in pixel units (bit for bit for λ_op 2:
  doubling is exact), and the estimator is pinned to `classical`;
- `flownet: auto` in the config: it becomes the estimator the run recorded, so that a resume cannot switch
  estimators when a weights file appears or goes;
- no `fps`: a built-in dataset's documented rate (dataset.resample.benchmark_fps), its origin in `fps_origin`;
- no `selected_with_test_labels`: true for a `*_best` file, the name training gave the file it chose by
  validation AUC;
- no `cache_flow` in the config: off, as they trained (their real frames' flow was computed per batch).
"""

from __future__ import annotations

from pathlib import Path

from dataset.resample import benchmark_fps
from errors import FFPError
from flownet import FLOW_CLASS_NAMES

FORMAT_VERSION = 2
LEGACY_FLOW_SCALE = 1 / 400  # what format 1's classical-flow motion loss was multiplied by
# Stored in the "flownet" entry: the units of the motion loss. Any other value than "pixels" would be a future
# unit, never read as the legacy scale.
FLOW_LOSS_UNITS = "pixels"
NOTES_KEY = "upgrade_notes"  # in memory only: what `upgrade` converted, for the start-up printout of train.py


def format_version(state: dict, path: Path) -> int:
    """The file's format version; FFPError for a version newer than this code reads."""
    version = state.get("format_version", 1)
    if not isinstance(version, int) or version < 1:
        raise FFPError(f"checkpoint {path}: format_version {version!r} is not a positive integer")
    if version > FORMAT_VERSION:
        raise FFPError(
            f"checkpoint {path} has format version {version}, written by a newer version of this project (this one "
            f"reads up to {FORMAT_VERSION}): update the code to read it"
        )
    return version


def upgrade(state: dict, path: Path) -> dict:
    """`state` in FORMAT_VERSION's terms (converted in place and returned); NOTES_KEY lists each conversion.

    Raises FFPError for a format newer than FORMAT_VERSION.
    """
    if format_version(state, path) == FORMAT_VERSION:
        return state
    notes = [_flow_units(state), _flow_name(state), _fps(state), _selection(state, path), _flow_cache(state)]
    state["format_version"] = FORMAT_VERSION
    state[NOTES_KEY] = [note for note in notes if note]
    return state


def _flow_units(state: dict) -> str | None:
    flow, config = state.get("flownet"), state["config"]
    if not (isinstance(flow, dict) and flow.get("name") == "ClassicalFlow" and "loss_units" not in flow):
        return None
    old = config.get("lambda_op", 0.0)
    config["lambda_op"], config["flownet"] = old * LEGACY_FLOW_SCALE, "classical"
    state["flownet"] = {**flow, "loss_units": FLOW_LOSS_UNITS}
    return (
        f"lambda_op: {old:g} -> {config['lambda_op']:g} (the same classical-flow motion loss, which this file's "
        f"format scaled by 1/400, in pixel units)"
    )


def _flow_name(state: dict) -> str | None:
    flow, config = state.get("flownet"), state["config"]
    by_class = {cls: choice for choice, cls in FLOW_CLASS_NAMES.items()}
    if config.get("flownet") != "auto" or not (isinstance(flow, dict) and flow.get("name") in by_class):
        return None
    config["flownet"] = by_class[flow["name"]]
    return f"flownet: auto -> {config['flownet']} (the estimator the run trained with)"


def _fps(state: dict) -> str | None:
    fps = state.get("fps")
    if isinstance(fps, (int, float)) and fps > 0:
        return None
    known = benchmark_fps(state["config"].get("dataset", ""))
    if known is None:
        return None
    state["fps"], state["fps_origin"] = known[0], f"{known[1]} (the checkpoint predates stored rates)"
    return f"fps: {known[0]:g} ({known[1]})"


def _selection(state: dict, path: Path) -> str | None:
    if state.get("selected_with_test_labels") is not None:
        return None
    state["selected_with_test_labels"] = Path(path).stem.endswith("_best")
    return f"selected_with_test_labels: {str(state['selected_with_test_labels']).lower()} (from the file's name)"


def _flow_cache(state: dict) -> str | None:
    if "cache_flow" in state["config"]:
        return None
    state["config"]["cache_flow"] = "off"
    return None  # the run's numbers are unchanged: nothing to tell
