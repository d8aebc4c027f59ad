"""notebooks/ffp_walkthrough.ipynb is stored clean (no outputs, no execution counts: .ci/run executes it) and runs
in a kernel of the project's own Python."""

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "ffp_walkthrough.ipynb"


def test_the_walkthrough_is_stored_without_outputs():
    notebook = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert code and all(cell["outputs"] == [] and cell["execution_count"] is None for cell in code)
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "jupyter execute" in ci and NOTEBOOK.name in ci


def test_the_walkthrough_uses_the_project_modules_not_copies():
    """Every code cell imports what it explains from the project; no network or loss is defined in the notebook."""
    source = "\n".join(
        "".join(cell["source"])
        for cell in json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
        if cell["cell_type"] == "code"
    )
    assert "class " not in source and "nn.Conv2d(" not in source
    for module in ("model", "training", "flownet", "evaluation.scores", "evaluation.metrics", "train"):
        assert f"from {module} import" in source or f"import {module}" in source, module
