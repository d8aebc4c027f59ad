"""Size rules ruff does not count: no module over 500 lines, no function over 60 (tests and benchmarks aside).

Complexity, parameters and statements are ruff's rules (C901, PLR0913, PLR0915 in pyproject.toml); these two keep a
module to one job and a function to one screen. A file that needs more is a sign it holds two jobs.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60


def library_files(root: Path = ROOT) -> list[Path]:
    """The project's source files outside tests/, bench/ and folders of data or experiments."""
    skipped = {"tests", "bench", "experiments", "data", "results", "runs", "weights", "cache", "notebooks"}
    return sorted(p for p in root.rglob("*.py") if p.relative_to(root).parts[0] not in skipped)


def long_functions(path: Path, root: Path = ROOT, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """'file:line name (n lines)' for every function or method of `path` longer than `limit` lines (def to end)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = node.end_lineno - node.lineno + 1 if node.end_lineno else 0
            if lines > limit:
                found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_module_over_500_lines():
    long = [
        f"{p.relative_to(ROOT)} ({n} lines)"
        for p in library_files()
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert long == []


def test_no_function_over_60_lines():
    assert [f for p in library_files() for f in long_functions(p)] == []


def test_the_count_sees_a_long_function(tmp_path):
    sample = tmp_path / "sample.py"
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    sample.write_text(f"def long():\n{body}\n\n\ndef short():\n    return 1\n")
    assert long_functions(sample, tmp_path) == [f"sample.py:1 long ({MAX_FUNCTION_LINES + 1} lines)"]
