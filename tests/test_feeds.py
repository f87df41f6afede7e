"""`qala feeds show`: every feed's story is found by its one name in every layer."""

from __future__ import annotations

import subprocess
import sys

import pytest

from transforms import feeds, settings
from transforms.contract import all_feeds, load_contract


@pytest.mark.parametrize("feed", all_feeds())
def test_every_feed_story_has_each_layer_and_every_file_named_exists(feed, tmp_path):
    contract = load_contract(feed)
    chapters = feeds.story(feed, tmp_path)
    roles = {}
    for chapter in chapters:
        roles.setdefault(chapter.role, []).append(chapter.where)
    assert roles["contract"] == [f"transforms/contracts/{feed}.yaml"]
    assert sorted(roles["GX suite"]) == sorted(f"expectations/{t.silver}.json" for t in contract.tables)
    assert sorted(roles["silver table"]) == sorted(f"silver.{t.silver}" for t in contract.tables)
    assert roles["DAG"] == [f"dags/ingest_{contract.domain}.py"]
    assert roles["landing folder"] == [str(tmp_path / "landing" / feed)]
    # one name in every layer: its staging models carry <domain>__<feed>, and every intermediate
    # model that reads it is an area model (int_kpi__<domain>) or a feed's own, named
    # int_<domain>__<feed>__… (the GTFS-Realtime model reads the GTFS timetables too)
    assert any(f"/stg_{contract.table}" in m for m in roles["dbt staging model"]), roles
    prefixes = ("int_kpi__",) + tuple(f"int_{load_contract(f).table}__" for f in all_feeds())
    assert all(m.rpartition("/")[2].startswith(prefixes) for m in roles.get("dbt intermediate model", [])), roles
    assert any("/test_" in t for t in roles["tests"])
    assert roles["simulator"] == [f"devkit/qala_devkit/simulate/{contract.name}.py"]
    for role, places in roles.items():
        if role in ("silver table", "quarantine table", "landing folder"):
            continue
        for where in places:
            assert (settings.REPO_ROOT / where.partition("#")[0]).is_file(), f"{role}: {where} does not exist"


def test_the_cli_shows_a_story_and_lists_every_feed():
    qala = [sys.executable, "-m", "transforms.cli"]
    shown = subprocess.run([*qala, "feeds", "show", "health/fhir_bulk"], capture_output=True, text=True, check=True)
    assert "transforms/readers/fhir_bulk.py" in shown.stdout
    assert "dbt_project/models/intermediate/int_health__fhir_bulk__appointment_current.sql" in shown.stdout
    listed = subprocess.run([*qala, "feeds", "list"], capture_output=True, text=True, check=True)
    assert [line.split()[0] for line in listed.stdout.splitlines()] == all_feeds()
    unknown = subprocess.run([*qala, "feeds", "show", "safety/no_such_feed"], capture_output=True, text=True)
    assert unknown.returncode == 2 and "invalid choice" in unknown.stderr
