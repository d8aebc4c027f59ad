"""The import graph: packages stack in layers, and no import runs back up from a lower layer to a higher one.

docs/architecture.md "Layers" draws the same stack. A module may import its own package/module and any lower layer;
two units of one layer do not import each other. Imports inside functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Lowest first. A unit is a top-level module (config) or package (dataset).
LAYERS: list[tuple[str, ...]] = [
    ("errors",),  # FFPError: imports nothing of the project
    ("durations",),  # the one grammar of durations in flags
    ("config", "utils", "cli"),  # the config object, small utilities, the CLIs' shared parsing
    ("model", "flownet", "synthetic"),  # networks, flow estimators, the synthetic dataset's generator
    ("dataset",),  # frames, layouts, labels, loaders
    ("checkpoint",),  # checkpoint files: every reader imports it from here
    ("evaluation",),  # the paper's protocol: scores, metrics, eval.py's report, heatmap videos
    ("inference",),  # the Predictor interface, PyTorch and ONNX Runtime behind it, the ONNX export
    ("training",),  # losses, the step, the run's bookkeeping
    ("model_file",),  # a checkpoint or an ONNX file -> a ready Predictor: what every CLI loads
    ("detection",),  # scoring a file, watching a live source: what detect.py runs
    ("train", "eval", "detect", "export", "bench"),  # the CLIs and the benchmarks
]
LAYER_OF = {unit: depth for depth, units in enumerate(LAYERS) for unit in units}


def project_units() -> set[str]:
    """Top-level modules and packages of the project (tests excluded)."""
    units = {p.stem for p in ROOT.glob("*.py")}
    units |= {p.parent.name for p in ROOT.glob("*/__init__.py")} | {"bench"}
    return units - {"conftest", "setup"}


def imported_units(path: Path, units: set[str]) -> set[str]:
    """The project units a source file imports (absolute imports; a relative one stays in its own package)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & units


def source_files() -> list[tuple[str, Path]]:
    """(unit, file) for every project source file."""
    files = [(p.stem, p) for p in ROOT.glob("*.py") if p.stem in LAYER_OF]
    for unit in LAYER_OF:
        if (ROOT / unit).is_dir():
            files += [(unit, p) for p in (ROOT / unit).rglob("*.py")]
    return files


def test_every_unit_has_a_layer():
    """A new module or package must be placed in LAYERS (and in docs/architecture.md's code map)."""
    assert project_units() - set(LAYER_OF) == set()


def test_no_import_runs_up_or_sideways():
    units = set(LAYER_OF)
    wrong = []
    for unit, path in source_files():
        for target in imported_units(path, units) - {unit}:
            if LAYER_OF[target] >= LAYER_OF[unit] and LAYER_OF[unit] != len(LAYERS) - 1:
                wrong.append(
                    f"{path.relative_to(ROOT)} imports {target} (layer {LAYER_OF[target]} >= {LAYER_OF[unit]})"
                )
    assert wrong == []


def test_the_check_sees_an_upward_import(tmp_path):
    """The parser finds function-level imports too (what a lazy upward import would look like)."""
    path = tmp_path / "lower.py"
    path.write_text("def f():\n    from training.step import train_step\n    import evaluation.scores\n")
    assert imported_units(path, set(LAYER_OF)) == {"training", "evaluation"}
