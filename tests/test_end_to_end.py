"""The product's promises, end to end: `make run` and `make ingest` through real Airflow
(LocalExecutor, SQLite), real DuckLake, real Great Expectations and real dbt."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, HEADER, accident_rows, land, query
from transforms import alerts, settings
from transforms.contract import DOMAINS, all_feeds, load_contract
from transforms.airflow_secrets import airflow_home
from transforms.orchestrate import airflow_env

# Two whole months: the KPI models publish complete months only. Every feed is simulated and
# loaded; the big ones at a small scale (the road-accident register stays at full size).
START, DAYS, SCALE = "2025-01-01", 59, "0.002"


def make(target: str, root: Path, **variables: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "QALA_WAREHOUSE": str(root)}
    args = ["make", "-C", str(settings.REPO_ROOT), target, *[f"{k}={v}" for k, v in variables.items()]]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=1800)


def independent_counts(root: Path) -> tuple[Counter, Counter]:
    """Accidents and deaths per (region prefix, month), straight from the landing files."""
    accidents, deaths = Counter(), Counter()
    for path in sorted((root / "landing" / "safety" / "road_accidents").glob("*/*.csv")):
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("cp1251")
        for record in csv.DictReader(text.splitlines(keepends=True)):
            month = record["occurred_at"][:7]
            if START[:7] <= month <= "2025-02":
                key = (record["kato_code"][:2], month)
                accidents[key] += 1
                deaths[key] += int(record["killed"])
    return accidents, deaths


def api_server_failures(root: Path) -> list[str]:
    """The embedded API server's 5xx answers and the errors it logged with them: its access log
    line ('status_code=5..'), Airflow's database-error line ('Error with id ...') and an unhandled
    exception. None is the promise (issue 20: found at their root, not retried away)."""
    log = airflow_home(root) / "logs" / "api-server.log"
    return [line[:300] for line in log.read_text(errors="replace").splitlines()
            if "status_code=5" in line or "Error with id" in line or "Exception in ASGI application" in line]


def table_counts(root: Path) -> dict:
    tables = query(root, "select schema_name, table_name from duckdb_tables() where database_name = 'qala'")
    return {f"{s}.{t}": query(root, f"select count(*) from {s}.{t}")[0][0]
            for s, t in tables if s != "ops"}


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e") / "warehouse"
    port = str(8900 + os.getpid() % 90)
    first = make("run", root, START=START, DAYS=str(DAYS), SCALE=SCALE, QALA_AIRFLOW_PORT=port)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    counts_after_first = table_counts(root)
    second = make("run", root, START=START, DAYS=str(DAYS), SCALE=SCALE, QALA_AIRFLOW_PORT=port)
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
    return root, first.stdout, counts_after_first


def test_make_run_loads_the_history_and_prints_the_scorecard(ran):
    root, output, _ = ran
    for domain in DOMAINS:
        assert f"Airflow: ingest_{domain} success" in output
    assert "Airflow: build_kpis success" in output
    assert "KPI scorecard" in output and "SAF-03" in output and "HLT-01" in output
    assert (root / "attach.sql").exists()
    ledger = query(root, "select count(distinct source_file), count(*) filter (where rows_in != rows_published + rows_quarantined), "
                         "count(*) filter (where status <> 'published'), count(distinct feed) from ops.load_ledger")
    landed = sum(len(list((root / "landing" / feed).glob(f"*/{load_contract(feed).format.get('files', '*')}")))
                 for feed in all_feeds())
    assert ledger == [(landed, 0, 0, len(all_feeds()))]
    # Both make runs: six ingest runs triggered at once, build_kpis, two task slots busy.
    assert api_server_failures(root) == []


def test_a_second_make_run_changes_no_row_count(ran):
    root, _, counts_after_first = ran
    assert table_counts(root) == counts_after_first
    assert counts_after_first["silver.safety__road_accidents"] > 0


def test_kpi_numbers_equal_an_independent_count_from_the_landing_files(ran):
    """The month's accidents and deaths per region behind SAF-01 and SAF-02 equal a count
    straight from the landing files; the two KPIs themselves are rolling 12-month windows, so
    two months of data publish no SAF-01/SAF-02 row (tests/test_kpi_safety_housing.py checks
    the windows on a two-year world)."""
    root, _, _ = ran
    accidents, deaths = independent_counts(root)
    months = sorted({m for _, m in accidents})
    assert months == ["2025-01", "2025-02"]
    built = {(prefix, month.strftime("%Y-%m")): (a, d) for prefix, month, a, d in query(
        root, "select region_prefix, month, accidents, deaths "
              "from intermediate.int_safety__road_accidents__region_month")}
    prefixes = {r["kato_prefix"] for r in csv.DictReader((settings.SEEDS_DIR / "regions.csv").open(encoding="utf-8"))
                if r["kind"] in ("region", "city")}
    assert set(built) == {(p, m) for p in prefixes for m in months}  # zero-filled, complete months only
    for key, (a, d) in built.items():
        assert (a, d) == (accidents[key], deaths[key]), key
    assert query(root, "select count(*) from marts.kpi_values where kpi_id in ('SAF-01', 'SAF-02')") == [(0,)]


@pytest.fixture
def mailbox(monkeypatch):
    """A real SMTP server on this machine (aiosmtpd), set up as the Airflow connection the
    alerts go through; the messages it received."""
    import email
    import socket

    from aiosmtpd.controller import Controller

    received = []

    class Inbox:
        async def handle_DATA(self, server, session, envelope):
            received.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content)))
            return "250 OK"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Inbox(), hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("AIRFLOW_CONN_QALA_ALERTS", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": port,
        "extra": {"to": "oncall@example.kz", "from_email": "qala@example.kz", "disable_ssl": True, "disable_tls": True}}))
    yield received
    controller.stop()


def test_make_ingest_on_an_empty_warehouse_fails_only_the_bad_file(tmp_path, mailbox):
    """Two `make ingest` started at once on an empty warehouse (issue 20: the embedded Airflow's
    API server answered 500 under exactly this): they share one Airflow, the safety day fails only
    its bad file, the education day publishes, and the API server's log holds no 5xx."""
    root = tmp_path / "fresh"  # nothing exists yet: no lake, no Airflow state
    land(root, "2025-03-01", "a_good.csv", HEADER + "\n" + accident_rows(15))
    land(root, "2025-03-01", "b_bad.csv", b"\x00\x01garbage" * 100)
    land(root, "2025-03-01", "desktop.ini", "[.ShellClassInfo]\r\n")  # a stray: not read, but accounted for
    queue = "queue_events_75_2025-03-03.csv"
    land(root, "2025-03-03", queue, (FIXTURES / "csv" / queue).read_bytes(), feed="education/kindergarten_queue")
    port = str(8990 + os.getpid() % 9)
    with ThreadPoolExecutor(2) as both:
        safety = both.submit(make, "ingest", root, DOMAIN="safety", DATE="2025-03-01", QALA_AIRFLOW_PORT=port)
        education = both.submit(make, "ingest", root, DOMAIN="education", DATE="2025-03-03", QALA_AIRFLOW_PORT=port)
        result, other = safety.result(), education.result()
    assert other.returncode == 0, other.stdout[-3000:] + other.stderr[-3000:]
    assert "Airflow: ingest_education success" in other.stdout
    assert query(root, "select source_file, status, rows_published from ops.load_ledger "
                       "where feed = 'education/kindergarten_queue'") == [
        (f"landing/education/kindergarten_queue/2025-03-03/{queue}", "published", 5)]
    assert result.returncode != 0
    assert "1 file(s) failed" in result.stdout
    assert "✗ landing/safety/road_accidents/2025-03-01/b_bad.csv: [format] binary file" in result.stdout
    stray = "landing/safety/road_accidents/2025-03-01/desktop.ini"
    assert f"· {stray}: not read: not a file this feed reads (its contract takes *.csv)" in result.stdout
    assert query(root, "select source_file, status from ops.load_ledger where feed like 'safety/%' order by 1") == [
        ("landing/safety/road_accidents/2025-03-01/a_good.csv", "published"),
        ("landing/safety/road_accidents/2025-03-01/b_bad.csv", "failed"), (stray, "not_read")]
    assert query(root, "select count(*) from silver.safety__road_accidents") == [(15,)]
    assert api_server_failures(root) == []
    run_id, = query(root, "select distinct run_id from ops.load_ledger where feed like 'safety/%'")[0]
    states = subprocess.run(
        [str(settings.REPO_ROOT / ".venv/bin/airflow"), "tasks", "states-for-dag-run", "ingest_safety",
         run_id, "-o", "json"], env={**airflow_env(root), "QALA_AIRFLOW_PORT": port},
        capture_output=True, text=True, check=True)
    tasks = {t["task_id"]: t["state"] for t in json.loads(states.stdout[states.stdout.index("["):])}
    # One load task for the day's files: it published the good one and ledgered the bad one;
    # the check task fails the run, and the Asset of what was published is announced.
    assert tasks["road_accidents.load"] == "success"
    assert tasks["road_accidents.check"] == "failed"
    assert tasks["road_accidents.announce"] == "success"
    # The failed check raised one alert: in the warehouse's alert log, and by e-mail through the
    # SMTP connection, each naming the file, its status and why.
    alert, = alerts.read(root)
    assert (alert["dag_id"], alert["run_id"], alert["task_id"]) == ("ingest_safety", run_id, "road_accidents.check")
    bad, unread = alert["files_not_published"]
    assert bad["source_file"] == "landing/safety/road_accidents/2025-03-01/b_bad.csv" and bad["status"] == "failed"
    assert "[format] binary file" in bad["reason"] and "b_bad.csv" in alert["error"]
    # The check's error names the stray file too, as a file this feed does not read.
    assert (unread["source_file"], unread["status"]) == (stray, "not_read") and f"not_read: {stray}" in alert["error"]
    (recipients, message), = mailbox
    assert recipients == ["oncall@example.kz"] and message["From"] == "qala@example.kz"
    assert message["Subject"] == f"[Qala] ingest_safety: road_accidents.check failed ({run_id})"
    body = next(part for part in message.walk() if part.get_content_type() == "text/html").get_payload(decode=True).decode()
    assert "- failed: landing/safety/road_accidents/2025-03-01/b_bad.csv: [format] binary file" in body and alert["log_url"] in body
