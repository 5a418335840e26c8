"""The generated dashboard against Grafana's own schema, as Grafana Labs publishes it:
`@grafana/schema` of the version docker-compose.yml pins (JSON Schemas generated from its
TypeScript types, checked with ajv: deploy/grafana/lint/schema/validate.mjs) and the
foundation SDK's strict decode plus Validate (deploy/grafana/lint/sdk). `make install`
builds both. Deliberately broken copies prove that either check can fail.
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.monitoring import DEPLOY, REPO

LINT = DEPLOY / "grafana" / "lint"
BOARD_FILE = DEPLOY / "grafana" / "dashboards" / "leadpulse.json"
BOARD: dict[str, Any] = json.loads(BOARD_FILE.read_text())
SDK = LINT / "sdk" / "bin" / "sdk"


def first(kind: str) -> int:
    return next(i for i, p in enumerate(BOARD["panels"]) if p["type"] == kind)


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(board: dict[str, Any]) -> None:
        node = board
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return change


def _drop(path: list[Any]) -> Callable[[dict[str, Any]], None]:
    def change(board: dict[str, Any]) -> None:
        node = board
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    return change


STAT, SERIES, TABLE = first("stat"), first("timeseries"), first("table")
#: name -> (change, the path the validators' output must name)
BROKEN = {
    "unknown-option": (_set(["panels", STAT, "options", "justifyModes"], "auto"), "justifyModes"),
    "unknown-query-field": (_set(["panels", SERIES, "targets", 0, "exprr"], "up"), "exprr"),
    "unknown-dashboard-field": (_set(["refreshes"], "1m"), "refreshes"),
    "wrong-type": (_set(["panels", SERIES, "gridPos", "w"], "wide"), "gridPos"),
    "wrong-option-type": (_set(["panels", TABLE, "options", "showHeader"], "yes"), "showHeader"),
    "bad-enum": (_set(["panels", STAT, "options", "colorMode"], "rainbow"), "colorMode"),
    "bad-legend-enum": (_set(["panels", SERIES, "options", "legend", "displayMode"], "grid"), "displayMode"),
    "missing-required": (_drop(["panels", STAT, "options", "textMode"]), "textMode"),
    "missing-required-custom": (_drop(["panels", TABLE, "fieldConfig", "defaults", "custom", "inspect"]), "inspect"),
}


def run(command: list[str]) -> tuple[int, dict[str, str]]:
    """Exit status and, per file, the validator's lines about it."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.stderr == "" or done.returncode in (0, 1), done.stderr
    lines: dict[str, str] = {}
    for line in done.stdout.splitlines():
        name, _, message = line.partition(": ")
        lines[name] = lines.get(name, "") + message + "\n"
    return done.returncode, lines


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """Each validator's output for the committed dashboard ("good") and each broken copy."""
    assert SDK.exists(), "run `make install` (builds deploy/grafana/lint/sdk/bin/sdk)"
    folder = tmp_path_factory.mktemp("broken")
    files = {"good": BOARD_FILE}
    for name, (change, _) in BROKEN.items():
        board = copy.deepcopy(BOARD)
        change(board)
        files[name] = folder / f"{name}.json"
        files[name].write_text(json.dumps(board))
    paths = [str(p) for p in files.values()]
    _, schema = run(["node", str(LINT / "schema" / "validate.mjs"), *paths])
    _, sdk = run([str(SDK), *paths])
    return {name: {"schema": schema[str(path)], "sdk": sdk[str(path)]} for name, path in files.items()}


def test_schema_package_is_the_grafana_version_compose_pins() -> None:
    image = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["grafana"]["image"]
    lock = json.loads((LINT / "schema" / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/@grafana/schema"]["version"] == image.rsplit(":", 1)[1]
    assert lock["packages"]["node_modules/@grafana/data"]["version"] == image.rsplit(":", 1)[1]


def test_dashboard_validates_against_grafana_schema(verdicts: dict[str, dict[str, str]]) -> None:
    assert verdicts["good"]["schema"] == "ok (@grafana/schema 11.3.0)\n"


def test_dashboard_passes_the_foundation_sdk_strict_decode_and_validate(verdicts: dict[str, dict[str, str]]) -> None:
    assert verdicts["good"]["sdk"] == "ok\n"


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_copy_fails_and_the_error_names_the_field(verdicts: dict[str, dict[str, str]], name: str) -> None:
    found = verdicts[name]
    assert not (found["schema"].startswith("ok") and found["sdk"].startswith("ok")), found
    field = BROKEN[name][1]
    assert field in found["schema"] + found["sdk"], found


def test_each_check_catches_what_the_other_misses(verdicts: dict[str, dict[str, str]]) -> None:
    """ajv knows the option enums, the SDK decoder the Prometheus query's fields: both are needed."""
    assert verdicts["bad-enum"]["sdk"] == "ok\n" and "colorMode" in verdicts["bad-enum"]["schema"]
    assert verdicts["unknown-query-field"]["schema"].startswith("ok") and "exprr" in verdicts["unknown-query-field"]["sdk"]


def test_the_old_hand_written_shape_fails_strict_decode_where_the_issue_says(tmp_path: Path) -> None:
    """A stat panel with only the options Grafana used to fill in (today's strict decode stop)."""
    board = copy.deepcopy(BOARD)
    board["panels"][STAT]["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "colorMode": "none", "graphMode": "none"}
    (tmp_path / "old.json").write_text(json.dumps(board))
    _, sdk = run([str(SDK), str(tmp_path / "old.json")])
    assert f"panels[{STAT}].options.justifyMode: required field is missing" in sdk[str(tmp_path / "old.json")]
