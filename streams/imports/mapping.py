"""The mapping file: which columns of a CRM's export hold what, and which values mean which stage.

One format for every CRM, read by one engine (`streams.imports.rows`): the HubSpot and
Salesforce presets are such files, shipped as package data, and `--mapping FILE.yaml`
takes another CRM's. A value list may name a setting instead (`$hubspot_mql_stages`),
so the presets, the live hooks and the operator's LEADPULSE_* variables share one source
of truth. Errors are one line naming the file and the key to fix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from streams.settings import Settings

Kind = Literal["lead", "deal", "history"]
#: What a lead object's columns may hold.
LEAD_ROLES: Final = (
    "id", "created", "source", "campaign", "owner", "mql", "sql", "customer", "disqualified",
    "status", "stage", "merged", "deleted", "converted", "converted_deal", "converted_at", "contacted",
)  # fmt: skip
#: What a deal object's columns may hold.
DEAL_ROLES: Final = ("id", "created", "closed", "lead", "stage", "won", "is_closed", "amount", "deleted")
#: What a history object's columns may hold: one change of a record's status or stage per row.
HISTORY_ROLES: Final = ("record", "field", "value", "at", "deleted")
#: Values of a lead's status or stage column that mean something, and of a deal's stage.
LEAD_VALUES: Final = ("mql", "sql", "customer", "disqualified", "contacted", "ignored")
DEAL_VALUES: Final = ("won", "lost", "ignored")
#: Lead roles whose aliases may hold `{stage}`: one alias per value of that meaning.
STAGE_DATE_ROLES: Final = ("mql", "sql", "customer", "disqualified")
PRESETS: Final = ("hubspot", "salesforce")
_SETTING_REF: Final = re.compile(r"\$([a-z_]+)")
_NOT_ALNUM: Final = re.compile(r"[^0-9a-z]+")


class MappingError(ValueError):
    """The mapping file is unreadable or wrong; the message names the key to fix."""


class ObjectMapping(BaseModel):
    """One object of a CRM (contacts, deals, leads, opportunities): its columns and values."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Kind
    #: The object's name in event ids (`contact`, `deal`, `lead`, `opportunity`).
    singular: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    columns: dict[str, list[str]]
    required: list[str] = Field(default_factory=lambda: ["id", "created"])
    #: Columns holding calendar dates without a time: 00:00 UTC of the date.
    calendar_dates: list[str] = Field(default_factory=list)
    values: dict[str, list[str]] = Field(default_factory=dict)
    #: Column aliases only this object's exports have: a file with them is this object.
    identify: list[str] = Field(default_factory=list)
    #: How to add a missing column in this CRM's export dialog, for the refusal.
    export_hint: str = "add the column to the export"
    #: Per optional role: what the numbers will miss without it (the warning).
    missing: dict[str, str] = Field(default_factory=dict)
    #: history: the object whose status or stage it records, whose `values` say what each means.
    of: str | None = None
    #: history: the `field` values of the rows that change that status or stage (`Status`).
    tracked: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _roles_are_known(self) -> ObjectMapping:
        roles, meanings = {"lead": (LEAD_ROLES, LEAD_VALUES), "deal": (DEAL_ROLES, DEAL_VALUES),
                           "history": (HISTORY_ROLES, ())}[self.kind]  # fmt: skip
        if (self.kind == "history") != (self.of is not None):
            raise ValueError("of: a history object, and only a history object, names the object it records (of: leads)")
        for key, names in (("columns", self.columns), ("required", self.required), ("calendar_dates", self.calendar_dates),
                           ("missing", self.missing)):  # fmt: skip
            unknown = sorted(set(names) - set(roles))
            if unknown:
                raise ValueError(f"{key}: unknown {self.kind} column role {unknown[0]!r}; known: {', '.join(roles)}")
        unknown = sorted(set(self.values) - set(meanings))
        if unknown:
            raise ValueError(f"values: unknown meaning {unknown[0]!r}; known: {', '.join(meanings)}")
        absent = sorted(set(self.required) - set(self.columns))
        if absent:
            raise ValueError(f"required: {absent[0]!r} has no entry under columns")
        return self

    def aliases(self, role: str) -> list[str]:
        """The column names `role` may have, `{stage}` expanded with each value of that meaning."""
        expanded: list[str] = []
        for alias in self.columns.get(role, []):
            if "{stage}" in alias:
                expanded += [alias.replace("{stage}", value) for value in self.values.get(role, [])]
            else:
                expanded.append(alias)
        return expanded

    def meaning(self, value: str) -> str | None:
        """What a status, stage or deal stage value means (a key of `values`), compared loosely."""
        return self._meanings.get(column_key(value))

    @cached_property
    def _meanings(self) -> dict[str, str]:
        """Value key -> meaning, built once: `meaning` runs for every status and stage cell of an import."""
        table: dict[str, str] = {}
        for meaning, listed in self.values.items():
            for item in listed:
                table.setdefault(column_key(item), meaning)  # the first meaning listing a value wins
        return table


class CrmMapping(BaseModel):
    """A whole mapping file: the CRM's name (first part of every event id) and its objects."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    crm: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    #: Canonicalise 15-character Salesforce ids to 18 (`streams.imports.ids`).
    salesforce_ids: bool = False
    objects: dict[str, ObjectMapping]

    @field_validator("objects")
    @classmethod
    def _one_or_more(cls, objects: dict[str, ObjectMapping]) -> dict[str, ObjectMapping]:
        if not objects:
            raise ValueError("name at least one object")
        for name, mapping in objects.items():
            target = objects.get(mapping.of or "")
            if mapping.of is not None and (target is None or target.kind == "history"):
                raise ValueError(f"{name}.of: {mapping.of!r} is not a lead or deal object of this mapping")
        return objects


@lru_cache(maxsize=4096)  # an export repeats its statuses and stages on every row
def column_key(name: str) -> str:
    """How column names and values compare: case, spaces and punctuation ignored.

    So HubSpot's label `Became a Marketing Qualified Lead Date` matches the alias
    `Became a {stage} Date` expanded with the internal name `marketingqualifiedlead`.
    """
    return _NOT_ALNUM.sub("", name.lower())


def load_mapping(path: Path, settings: Settings) -> CrmMapping:
    """A mapping file, its `$setting` references resolved; `MappingError` names the key to fix."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise MappingError(f"{path}: cannot read the mapping: {_first_line(exc)}") from exc
    return _validated(raw, settings, str(path))


def preset(name: str, settings: Settings) -> CrmMapping:
    """A shipped preset (`hubspot`, `salesforce`) with the operator's settings filled in."""
    return _validated(_preset_raw(name), settings, f"preset {name}")


@lru_cache(maxsize=None)
def _preset_raw(name: str) -> Any:
    return yaml.safe_load(resources.files("streams.imports").joinpath(f"presets/{name}.yaml").read_text("utf-8"))


def _validated(raw: Any, settings: Settings, where: str) -> CrmMapping:
    try:
        return CrmMapping.model_validate(_resolve(raw, settings, ()))
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        raise MappingError(f"{where}: {key}: {error['msg']}") from None


def _resolve(node: Any, settings: Settings, where: Sequence[str]) -> Any:
    """Replace `$setting` strings (alone, or as list items) with that setting's comma-separated values."""
    if isinstance(node, Mapping):
        return {key: _resolve(value, settings, (*where, str(key))) for key, value in node.items()}
    if isinstance(node, list):
        items: list[Any] = []
        for item in node:
            resolved = _resolve(item, settings, where)
            items += resolved if isinstance(item, str) and _SETTING_REF.fullmatch(item) else [resolved]
        return items
    if isinstance(node, str) and (match := _SETTING_REF.fullmatch(node)):
        name = match.group(1)
        if name not in Settings.model_fields:
            raise MappingError(f"{'.'.join(where)}: {node!r} names no setting (LEADPULSE_{name.upper()} does not exist)")
        return [part.strip() for part in str(getattr(settings, name)).split(",") if part.strip()]
    return node


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
