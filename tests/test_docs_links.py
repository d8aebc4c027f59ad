"""Every pointer into the documentation resolves: relative links in the Markdown files, and the places code, help
texts, error messages and requirements files send a reader to (README "Section", docs/page.md, docs/page.md#anchor,
docs/page.md "Section", bench/README.md). Anchors follow GitHub's heading slugs. No torch, no subprocess: fast.
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SELF = Path(__file__).resolve()

# Top-level folders holding data or generated outputs: only their own files are read (their READMEs), not their trees.
SHALLOW = {"data", "results", "runs", "weights", "cache"}
SKIPPED = {".git", "__pycache__", ".venv", "venv", "node_modules", ".ruff_cache", ".mypy_cache", ".pytest_cache"}
CODE_SUFFIXES = {".py", ".txt", ".toml", ".cff", ".cfg", ".ini", ".sh"}
EXTRA_CODE_FILES = (".ci/run",)

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")
HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)
MD_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^()\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# A path to a documentation page, optionally with an anchor, as code and prose name it.
DOC_PATH = re.compile(
    r"(?<![\w/.-])((?:[\w.-]+/)*(?:README|CHANGELOG)\.md|(?:[\w.-]+/)*docs/[\w.-]+\.md)(#[^\s)\]'\"`,;]+)?"
)
# README "Section" / README 'Section' (a heading of the top-level README, or the start of one).
README_SECTION = re.compile(r"\bREADME(?:\.md)?\s+[\"'“]([A-Z][^\"'”\n]{0,80})[\"'”]")
# docs/page.md "Section"
DOC_SECTION = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*docs/[\w.-]+\.md)\s+[\"'“]([A-Z][^\"'”\n]{0,80})[\"'”]")


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading's text: markup dropped, lower case, punctuation removed, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # [text](url) -> text
    text = text.replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def strip_code(markdown: str) -> str:
    """The Markdown without fenced blocks and inline code spans (links and headings there are not links); line
    breaks are kept, so line numbers stay true."""
    blank = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), markdown)
    return INLINE_CODE.sub("", blank)


def line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


@cache
def headings(path: Path) -> tuple[tuple[str, str], ...]:
    """(text, anchor) of every heading in a Markdown file, anchors numbered for repeats as GitHub does."""
    seen: dict[str, int] = {}
    out = []
    for match in HEADING.finditer(FENCE.sub("", path.read_text(encoding="utf-8"))):
        text = match.group(2).strip()
        slug = github_slug(text)
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        plain = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text).replace("`", "")
        out.append((plain, slug if n == 0 else f"{slug}-{n}"))
    return tuple(out)


def has_anchor(path: Path, anchor: str) -> bool:
    return anchor.lower() in {slug for _, slug in headings(path)}


def has_section(path: Path, name: str) -> bool:
    """A heading whose text is `name` or starts with it (a pointer may name a heading by its first words)."""
    name = " ".join(name.split()).casefold()
    return any(text.casefold().startswith(name) for text, _ in headings(path))


def repo_files() -> tuple[list[Path], list[Path]]:
    """(Markdown files, code/config files) of the project, outside data and generated outputs."""
    markdown, code = [], []
    for folder, dirs, files in os.walk(ROOT):
        here = Path(folder)
        rel = here.relative_to(ROOT)
        if rel.parts and rel.parts[0] in SHALLOW:
            dirs[:] = []
        dirs[:] = [d for d in dirs if d not in SKIPPED and not (here == ROOT and d == "shared")]
        for name in files:
            path = here / name
            if path.suffix == ".md":
                markdown.append(path)
            elif path.suffix in CODE_SUFFIXES and path != SELF:
                code.append(path)
    code += [ROOT / name for name in EXTRA_CODE_FILES if (ROOT / name).is_file()]
    return sorted(markdown), sorted(code)


def resolve_doc(path_text: str, origin: Path) -> Path | None:
    """A documentation path as written in `origin`: relative to the repository root, else to origin's folder."""
    for base in (ROOT, origin.parent):
        candidate = (base / path_text).resolve()
        if candidate.is_file():
            return candidate
    return None


def link_problems(md_file: Path, root: Path = ROOT) -> list[str]:
    """Relative links of one Markdown file that lead nowhere: a missing file, or a missing heading anchor."""
    problems = []
    text = strip_code(md_file.read_text(encoding="utf-8"))
    for match in MD_LINK.finditer(text):
        target = match.group(1)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = md_file if not file_part else (md_file.parent / file_part).resolve()
        where = f"{md_file.relative_to(root)}:{line_of(text, match.start())}: ({target})"
        if not dest.exists():
            problems.append(f"{where}: no file {file_part}")
        elif anchor and dest.suffix == ".md" and not has_anchor(dest, anchor):
            problems.append(f"{where}: {dest.relative_to(root)} has no heading #{anchor}")
    return problems


def pointer_problems(path: Path, text: str) -> list[str]:
    """Pointers from one file's text to README sections and docs pages that do not exist."""
    problems = []
    rel = path.relative_to(ROOT)
    for match in DOC_PATH.finditer(text):
        page, anchor = match.group(1), (match.group(2) or "")[1:]
        where = f"{rel}:{line_of(text, match.start())}"
        dest = resolve_doc(page, path)
        if dest is None:
            problems.append(f"{where}: no file {page}")
        elif anchor and not has_anchor(dest, anchor):
            problems.append(f"{where}: {page} has no heading #{anchor}")
    for match in README_SECTION.finditer(text):
        if not has_section(ROOT / "README.md", match.group(1)):
            problems.append(f'{rel}:{line_of(text, match.start())}: README.md has no section "{match.group(1)}"')
    for match in DOC_SECTION.finditer(text):
        page, name = match.groups()
        dest = resolve_doc(page, path)
        if dest is not None and not has_section(dest, name):
            problems.append(f'{rel}:{line_of(text, match.start())}: {page} has no section "{name}"')
    return problems


def test_github_slugs():
    assert github_slug("Quick start") == "quick-start"
    assert github_slug("How `--preset cpu` was chosen") == "how---preset-cpu-was-chosen"
    assert github_slug("Deployment: an ONNX model on a camera box") == "deployment-an-onnx-model-on-a-camera-box"
    assert github_slug("Using the [shipped](x.md) model (Ped2)") == "using-the-shipped-model-ped2"


def test_the_checks_catch_a_broken_pointer(tmp_path):
    """The extractors see each form of pointer, and a missing page, anchor or section is reported."""
    fake = ROOT / "fake.py"
    text = (
        "x = 1  # see README 'No such section' and docs/no_such_page.md\n"
        "# docs/datasets.md#no-such-anchor, docs/datasets.md 'No such heading', README \"Quick start\"\n"
    )
    problems = pointer_problems(fake, text)
    assert len(problems) == 4, problems
    assert not pointer_problems(fake, "# README 'Quick start', docs/datasets.md#labels, docs/datasets.md 'Labels'")
    page = tmp_path / "page.md"
    page.write_text("# T\n\n## A b\n\n[ok](#a-b) [bad](#nope) `[code](nowhere.md)`\n\n```\n[x](missing.md)\n```\n")
    assert [p.split(": ")[-1] for p in link_problems(page, root=tmp_path)] == ["page.md has no heading #nope"]


def test_markdown_links_resolve():
    markdown, _ = repo_files()
    assert ROOT / "README.md" in markdown and any(p.parent.name == "docs" for p in markdown)
    problems = [p for md_file in markdown for p in link_problems(md_file)]
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_pointers_from_code_and_docs_resolve():
    """Code, help texts, messages, requirements files and the docs' own prose name pages and sections that exist."""
    markdown, code = repo_files()
    problems = []
    for path in code:
        problems += pointer_problems(path, path.read_text(encoding="utf-8", errors="replace"))
    for path in markdown:
        problems += pointer_problems(path, strip_code(path.read_text(encoding="utf-8")))
    assert not problems, "pointers to documentation that does not exist:\n" + "\n".join(problems)
