"""Building blocks of the result pages: CSV/JSON text, matplotlib figures, HTML snippets, result folders.

Figures are `matplotlib.figure.Figure` objects on the Agg canvas, never registered with pyplot: no global
figure state, nothing left open after saving, safe without a display. Result folders (eval.py, detect.py) are
built in a hidden temp sibling and renamed into place (`StagedResult`).
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import quote

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from errors import FFPError
from utils.files import (
    atomic_write_bytes,
    install_folder,
    not_writable_reason,
    remove_dead_staging,
    signals_deferred,
    staging_folder,
)

CSS = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
    "text-align:left;vertical-align:top}td.num{text-align:right;font-variant-numeric:tabular-nums}"
    "img,video{max-width:100%}pre{background:#f4f4f4;padding:8px;overflow-x:auto}"
    "figure{margin:1.5em 0}"
)


# ----------------------------------------------------------------------------- small writers


def csv_text(header: Sequence[str], rows) -> str:
    """CSV text (Unix newlines) of a header and an iterable of row sequences."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def json_safe(obj):
    """Recursively convert numpy scalars/arrays, paths and tuples to JSON types; NaN/inf become null."""
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, np.ndarray)):
        return [json_safe(v) for v in (obj.tolist() if isinstance(obj, np.ndarray) else obj)]
    if isinstance(obj, np.generic):
        return json_safe(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)  # Path, torch.device, ... : their text is what a reader of the JSON wants


def json_text(obj) -> str:
    """Indented, strictly valid JSON of `obj` (after json_safe), with a trailing newline."""
    return json.dumps(json_safe(obj), indent=2, allow_nan=False) + "\n"


def new_figure(size=(8.0, 3.0)) -> Figure:
    """A figure on its own Agg canvas, outside pyplot, so it needs no closing."""
    fig = Figure(figsize=size, dpi=100)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path: Path) -> None:
    """Render `fig` to PNG bytes in memory, then write them atomically."""
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())


def file_stems(names) -> dict[str, str]:
    """Video name -> unique, filesystem- and URL-safe file stem (no leading dot, no separators)."""
    stems: dict[str, str] = {}
    for name in names:
        stem = re.sub(r"[^A-Za-z0-9_-]", "_", str(name)) or "video"
        while stem in stems.values():
            stem += "_"
        stems[name] = stem
    return stems


# ----------------------------------------------------------------------------- result folders


def free_result_path(out_root: Path, name: str, overwrite: bool) -> Path:
    """out_root/name, or the first free numbered sibling name_2, name_3, ... unless `overwrite`."""
    base = Path(out_root) / name
    if overwrite or not base.exists():
        return base
    n = 2
    while base.with_name(f"{name}_{n}").exists():
        n += 1
    return base.with_name(f"{name}_{n}")


class StagedResult:
    """Context manager building a result folder in a hidden temp sibling, moved into place only on success.

        with StagedResult(Path("results"), "ped2_latest", overwrite=False) as stage:
            write files into stage.dir
        print(stage.path)          # results/ped2_latest (or ped2_latest_2, ...)

    On an exception the temp folder is deleted, so a crash never leaves a half-written result folder
    (a SIGKILL can leave a hidden `.<name>.tmp-*` folder, never a visible one). The final name is picked
    when the work is done, so the numbered sibling is free at that moment; with `overwrite` an existing
    folder is replaced (moved aside, the new one renamed in, the old one deleted).
    """

    def __init__(self, out_root: str | os.PathLike, name: str, overwrite: bool):
        self.out_root, self.name, self.overwrite = Path(out_root), name, overwrite
        self._dir: Path | None = None
        self._path: Path | None = None

    @property
    def dir(self) -> Path:
        """The hidden folder being written (inside the with-block)."""
        if self._dir is None:
            raise RuntimeError("StagedResult.dir is set when its with-block is entered")
        return self._dir

    @property
    def path(self) -> Path:
        """The result folder (after the with-block ended without an exception)."""
        if self._path is None:
            raise RuntimeError("StagedResult.path is set when its with-block ends without an exception")
        return self._path

    def __enter__(self) -> StagedResult:
        self._made_root = not self.out_root.exists()
        try:
            self.out_root.mkdir(parents=True, exist_ok=True)
            remove_dead_staging(self.out_root)
            self._dir = staging_folder(self.out_root, self.name)
        except OSError as exc:
            raise FFPError(
                f"--out_dir {self.out_root} is not writable: {not_writable_reason(self.out_root, exc)}"
            ) from None
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            with signals_deferred():  # a second Ctrl-C/SIGTERM must not cut the clean-up short
                shutil.rmtree(self.dir, ignore_errors=True)
                if self._made_root:  # an --out_dir this run created goes too, if nothing else is in it
                    try:
                        self.out_root.rmdir()
                    except OSError:
                        pass
            return
        self._path = free_result_path(self.out_root, self.name, self.overwrite)
        install_folder(self.dir, self.path)  # with overwrite: swapped, so the old folder is never half-deleted


class LiveResult:
    """Context manager for the result folder of a live source, written IN PLACE while it runs (events.jsonl and
    scores.csv grow as events happen, so the folder must be visible from the start).

    The folder is out_root/name or its first free numbered sibling (with `overwrite`, an existing out_root/name is
    deleted first). On an exception before `keep` is set (nothing scored yet), the folder is removed again; after
    that it stays, and the caller completes its files.
    """

    def __init__(self, out_root: str | os.PathLike, name: str, overwrite: bool):
        self.out_root, self.name, self.overwrite = Path(out_root), name, overwrite
        self.keep = False
        self.path: Path | None = None

    @property
    def dir(self) -> Path:
        """The folder (the same as `path`; the name StagedResult's callers use)."""
        assert self.path is not None, "use LiveResult as a context manager"
        return self.path

    def __enter__(self) -> LiveResult:
        try:
            self.out_root.mkdir(parents=True, exist_ok=True)
            path = free_result_path(self.out_root, self.name, self.overwrite)
            if self.overwrite and path.exists():
                shutil.rmtree(path) if path.is_dir() else path.unlink()
            path.mkdir()
        except OSError as exc:
            raise FFPError(
                f"--out_dir {self.out_root} is not writable: {not_writable_reason(self.out_root, exc)}"
            ) from None
        self.path = path
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and not self.keep and self.path is not None:
            with signals_deferred():
                shutil.rmtree(self.path, ignore_errors=True)


# ----------------------------------------------------------------------------- HTML


def html_page(title: str, body: str) -> str:
    """A page with inline CSS, no scripts and no network; it links its images and videos (relative paths), so
    it is viewed with its folder."""
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{CSS}</style></head>\n<body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )


def html_table(header: Sequence[str], rows, numeric: Sequence[int] = ()) -> str:
    """HTML table with escaped cells (no header row when `header` is empty); columns in `numeric` are right-aligned
    (the page's font, tabular digits)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=num' if i in numeric else ''}>{html.escape(str(c))}</td>" for i, c in enumerate(row))
        + "</tr>\n"
        for row in rows
    )
    return f"<table><tr>{head}</tr>\n{body}</table>" if head else f"<table>{body}</table>"


def href(rel: str) -> str:
    """Percent-encode a relative path for src/href (keeps '/'), escaped for an attribute."""
    return html.escape(quote(rel), quote=True)


def run_table(run: Mapping[str, object]) -> str:
    """The run at a glance, the top of a page: one row per item (input, checkpoint, date, commit, torch, device,
    times); None shows as '-'."""
    return html_table([], [(k, "-" if v is None else v) for k, v in run.items()])


def meta_block(meta: Mapping, summary: str) -> str:
    """The run's meta (config, checkpoint, knobs) as pretty JSON, folded away under `summary` (a page ends with it)."""
    return f"<details><summary>{html.escape(summary)}</summary>\n<pre>{html.escape(json_text(meta))}</pre></details>"


def checked_video_links(out: Path, videos: Mapping[str, str] | None) -> dict[str, str]:
    """Heatmap video links must be relative paths that already exist under the report folder."""
    videos = dict(videos or {})
    for name, rel in videos.items():
        if Path(rel).is_absolute() or ".." in Path(rel).parts or not (out / rel).is_file():
            raise ValueError(
                f"videos[{name!r}] = {rel!r}: expected an existing file relative to {out} "
                "(write the heatmap videos before the report)"
            )
    return videos
