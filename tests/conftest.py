"""Shared fixtures: every test works on its own temporary warehouse."""

from __future__ import annotations

import os
import re
import socket
import stat
from pathlib import Path

import pytest

from transforms import lake
from transforms.load import LoadFailure, load_files

# Test tiers. `make test-fast` runs what needs no Airflow, no browser and no dbt build (a few
# minutes: readers, row checks, the load path into a real DuckLake with the real GX gate, the
# simulator); `make test` (CI) runs everything. A test's tier follows from what it uses, so a
# new test lands in the right tier without a decorator: the modules that drive the embedded
# Airflow, the fixtures that build with dbt or start Chromium.
AIRFLOW_MODULES = {"test_dags", "test_end_to_end", "test_ingest_all"}
DBT_MODULES = {"test_dbt_kpis", "test_dbt_incremental", "test_rekey_dbt"}
FIXTURE_TIERS = {"kpi_world": "dbt", "browser": "browser"}


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        module = item.module.__name__.rpartition(".")[2]
        tiers = {"airflow"} if module in AIRFLOW_MODULES else set()
        tiers |= {"dbt"} if module in DBT_MODULES else set()
        tiers |= {tier for fixture, tier in FIXTURE_TIERS.items() if fixture in item.fixturenames}
        for tier in sorted(tiers):
            item.add_marker(getattr(pytest.mark, tier))


# Our own small exports for the cases the standards allow (tests/fixtures/README.md).
FIXTURES = Path(__file__).resolve().parent / "fixtures"

HEADER = "accident_id,occurred_at,kato_code,severity,injured,killed,vehicles,street,lat,lon"


@pytest.fixture
def warehouse(tmp_path: Path, monkeypatch) -> Path:
    root = tmp_path / "warehouse"
    root.mkdir()
    monkeypatch.setenv("QALA_WAREHOUSE", str(root))
    lake.ensure_lake(root)
    return root


@pytest.fixture
def free_port(monkeypatch) -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("QALA_AIRFLOW_PORT", str(port))
    return port


def land(root: Path, day: str, name: str, content: bytes | str, feed: str = "safety/road_accidents") -> Path:
    folder = root / "landing" / feed / day
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def not_private(root: Path) -> list[Path]:
    """Every file and directory under root (root included) that its group or other users may
    read, write or enter; symbolic links, whose own mode means nothing, aside."""
    found = []
    for folder, dirs, files in os.walk(root):
        for path in [Path(folder), *(Path(folder) / name for name in files)]:
            mode = path.lstat().st_mode
            if not stat.S_ISLNK(mode) and mode & 0o077:
                found.append(path)
    return sorted(found)


def failure_of(feed: str, path: Path) -> str:
    with pytest.raises(LoadFailure) as failure:
        load_files(feed, [path], run_id="r")
    (row,) = failure.value.rows
    assert row.status == "failed" and (row.rows_in, row.rows_published) == (0, 0)
    return str(failure.value)


def accident_rows(n: int, day: str = "2025-03-01", prefix: str = "RA", kato: str = "710110000") -> str:
    return "".join(
        f"{prefix}-{i},{day} 08:{i % 60:02d}:00,{kato},injury,1,0,2,проспект Абая,51.1{i % 10},71.4\n"
        for i in range(n))


def valid_iin(i: int, born: str = "880101", century: str = "3") -> str:
    """The i-th (0-based) IIN with a correct check digit of someone born on `born` (YYMMDD)."""
    from qala_devkit.simulate.people import is_valid

    numbers = [f"{born}{century}{serial:04d}{digit}" for serial in range(1000) for digit in range(10)]
    return [n for n, ok in zip(numbers, is_valid(numbers)) if ok][i]


def query(root: Path, sql: str, params=None) -> list[tuple]:
    """Read the lake as an analyst does: attached read-only."""
    con = lake.connect(root, read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="session")
def kpi_world(tmp_path_factory):
    """Every feed simulated for 14 months, loaded and built by dbt (tests/kpi_world.py).
    QALA_KPI_WORLD=<dir> reuses a world built there before (for working on KPI tests)."""
    import kpi_world as world

    reuse = os.environ.get("QALA_KPI_WORLD")
    if reuse and (Path(reuse) / "lake").exists():
        return world.World(Path(reuse), world.START, world.DAYS)
    return world.build(Path(reuse) if reuse else tmp_path_factory.mktemp("kpi_world") / "warehouse")


DOCS_QUERIES = Path(__file__).resolve().parents[1] / "docs" / "queries"


def run_doc_query(root: Path, name: str, variables: dict) -> list[dict]:
    """Run a documented query as an analyst would, with our values in its SET VARIABLE lines."""
    text = (DOCS_QUERIES / name).read_text(encoding="utf-8")
    for var, literal in variables.items():
        text, n = re.subn(rf"SET VARIABLE {var} = [^;]*;", f"SET VARIABLE {var} = {literal};", text)
        assert n == 1, f"{name} sets no variable {var}"
    text = re.sub(r"--[^\n]*", "", text)  # comments may hold a ';'
    statements = [s for s in text.split(";") if s.strip()]
    con = lake.connect(root, read_only=True)
    try:
        for statement in statements[:-1]:
            con.execute(statement)
        cur = con.execute(statements[-1])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]
    finally:
        con.close()
