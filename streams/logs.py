"""Logging setup shared by every command.

It lives apart from the CLI so that the commands' own modules (api, stack, generate,
the exporter) can configure logging without importing the CLI that imports them.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager


def configure_logging(level: str) -> None:
    """One format for every command, on stderr so stdout stays the command's output."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@contextmanager
def quiet(*loggers: str) -> Iterator[None]:
    """Silence `loggers` for the block: Kafka clients log every refused connection, which is
    noise while a probe polls a starting broker or a diagnosis retraces a failing one."""
    saved = [(logger, logger.level) for logger in map(logging.getLogger, loggers)]
    for logger, _ in saved:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in saved:
            logger.setLevel(level)
