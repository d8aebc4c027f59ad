"""The user-error type, in a module of its own so that flag parsing and `--help` never import torch."""

from __future__ import annotations


class FFPError(Exception):
    """An error the user can cause and fix (bad path, flag, file). The CLIs print it as one line and exit 1."""


def write_error(exc: OSError, path: object = None) -> FFPError:
    """The one line for an OSError met writing a result file: 'cannot write <path>: <reason>' (without `path`, the
    file the OS names)."""
    return FFPError(f"cannot write {exc.filename if path is None else path}: {exc.strerror or exc}")
