"""The user-error type, in a module of its own so that flag parsing and `--help` never import torch."""

from __future__ import annotations


class FFPError(Exception):
    """An error the user can cause and fix (bad path, flag, file). The CLIs print it as one line and exit 1."""
