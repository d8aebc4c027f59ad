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
    ("config", "live_targets"),  # the config object and its fields' metadata; what a --video value names
    ("config_flags", "utils", "cli"),  # flags made from the config, small utilities, the CLIs' shared parsing
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


# ----------------------------------------------------------------------------------------------- modules
def module_name(path: Path, root: Path = ROOT) -> str:
    """'dataset.types' for dataset/types.py, 'dataset' for dataset/__init__.py, 'config' for config.py."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str], root: Path = ROOT) -> set[str]:
    """The project modules a source file imports, relative imports resolved, those inside functions and under
    TYPE_CHECKING included (a cycle of annotations is still a cycle: it is what leaves signatures untyped)."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names}
    return found & modules


def module_graph() -> dict[str, set[str]]:
    """{module: the project modules it imports} over every source file of the layered units."""
    files = {module_name(path): path for _, path in source_files()}
    return {name: imported_modules(path, set(files)) - {name} for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as [a, b, …, a], or [] when the graph has none (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = 2
        path.pop()
        return []

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return []


def test_no_import_cycle_between_modules():
    """Inside packages too: the modules of a package form an order (dataset/__init__.py lists it for dataset/)."""
    assert find_cycle(module_graph()) == []


def test_the_check_sees_a_cycle_of_annotations(tmp_path):
    """A cycle only under TYPE_CHECKING counts, and relative imports resolve to the package's modules."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("import typing\nif typing.TYPE_CHECKING:\n    from .b import B\n")
    (tmp_path / "pkg" / "b.py").write_text("from . import a\n")
    modules = {"pkg.a", "pkg.b"}
    graph = {m: imported_modules(tmp_path / f"{m.replace('.', '/')}.py", modules, tmp_path) for m in modules}
    assert find_cycle(graph) in (["pkg.a", "pkg.b", "pkg.a"], ["pkg.b", "pkg.a", "pkg.b"])
