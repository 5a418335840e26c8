"""Logging setup shared by every command.

It lives apart from the CLI so that the commands' own modules (api, stack, generate,
the exporter) can configure logging without importing the CLI that imports them.
"""

from __future__ import annotations

import logging
import sys


def configure_logging(level: str) -> None:
    """One format for every command, on stderr so stdout stays the command's output."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
