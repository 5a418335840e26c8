"""The stack's one error: what could not be started, reached or stopped, and where to look."""

from __future__ import annotations


class StackError(RuntimeError):
    """A service could not be started, reached or stopped; read the log the message names."""
