"""The ingest API's OpenAPI 3.1 document: kept as YAML beside the code, served as JSON.

One file describes every route (`openapi.yaml`); the tests check it against the routes
the app registers and fuzz the running API with it, so the two cannot drift apart.
"""

from __future__ import annotations

import functools
from importlib.resources import files
from typing import Any

import orjson
import yaml


@functools.cache
def document() -> dict[str, Any]:
    """The document as loaded from `openapi.yaml` (read once per process)."""
    loaded: dict[str, Any] = yaml.safe_load(files(__package__).joinpath("openapi.yaml").read_text())
    return loaded


@functools.cache
def document_json() -> bytes:
    """The document as the JSON `GET /openapi.json` serves."""
    return orjson.dumps(document())
