"""Feed contracts: one YAML file per feed under transforms/contracts/<domain>/<feed>.yaml.

A contract declares a feed once: format, columns and types, primary key, event-time column,
personal identifiers and their treatment. Everything else (reader, row checks, GX gate, silver
table, DAG tasks) is derived from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

from transforms import settings

DUCKDB_TYPES = {"VARCHAR", "INTEGER", "BIGINT", "DOUBLE", "BOOLEAN", "DATE", "TIMESTAMP"}
PII_TREATMENTS = {"hash", "drop", "year"}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    required: bool
    description: str


@dataclass(frozen=True)
class Contract:
    feed: str
    title: str
    format: dict
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    event_time: str
    pii: dict[str, str] = field(default_factory=dict)
    cadence: str = "daily"

    @property
    def domain(self) -> str:
        return self.feed.split("/")[0]

    @property
    def name(self) -> str:
        return self.feed.split("/")[1]

    @property
    def table(self) -> str:
        """Name of the feed's silver and quarantine tables, `<domain>__<feed>`."""
        return f"{self.domain}__{self.name}"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def suite_path(self) -> Path:
        return settings.EXPECTATIONS_DIR / f"{self.table}.json"

    def suite(self) -> dict:
        return json.loads(self.suite_path.read_text(encoding="utf-8"))

    @property
    def published_columns(self) -> list[Column]:
        """The columns that reach silver: every contract column but those dropped as PII."""
        return [c for c in self.columns if self.pii.get(c.name) != "drop"]


def _parse(path: Path) -> Contract:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    columns = tuple(
        Column(name, spec["type"].upper(), bool(spec.get("required", False)), spec.get("description", ""))
        for name, spec in raw["columns"].items()
    )
    contract = Contract(
        feed=raw["feed"],
        title=raw["title"],
        format=raw["format"],
        columns=columns,
        primary_key=tuple(raw.get("primary_key", [])),
        event_time=raw["event_time"],
        pii=dict(raw.get("pii") or {}),
        cadence=raw.get("cadence", "daily"),
    )
    _validate(contract, path)
    return contract


def _validate(contract: Contract, path: Path) -> None:
    names = set(contract.column_names)
    problems = [f"column {c.name}: unknown type {c.type}" for c in contract.columns if c.type not in DUCKDB_TYPES]
    problems += [f"primary key column {k} is not a column" for k in contract.primary_key if k not in names]
    problems += [f"pii column {k} is not a column" for k in contract.pii if k not in names]
    problems += [f"pii column {k}: treatment must be one of {sorted(PII_TREATMENTS)}"
                 for k, t in contract.pii.items() if t not in PII_TREATMENTS]
    if contract.event_time not in names:
        problems.append(f"event_time {contract.event_time} is not a column")
    if f"{path.parent.name}/{path.stem}" != contract.feed:
        problems.append(f"feed {contract.feed} does not match its file name")
    if problems:
        raise ValueError(f"contract {path}: " + "; ".join(problems))


@cache
def load_contract(feed: str) -> Contract:
    """The contract of `<domain>/<feed>`."""
    path = settings.CONTRACTS_DIR / f"{feed}.yaml"
    if not path.exists():
        raise KeyError(f"no contract for feed {feed!r} (looked for {path})")
    return _parse(path)


def all_feeds() -> list[str]:
    return sorted(f"{p.parent.name}/{p.stem}" for p in settings.CONTRACTS_DIR.glob("*/*.yaml"))


def feeds_of_domain(domain: str) -> list[str]:
    return [f for f in all_feeds() if f.startswith(f"{domain}/")]
