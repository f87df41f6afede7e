"""Runs Qala's DAGs through the embedded Airflow (LocalExecutor, SQLite in the warehouse).

Airflow is driven from outside, as an engineer would: its own processes (API server,
scheduler, DAG processor) started with this warehouse's environment, runs triggered and
watched through the REST API (/api/v2). Nothing here imports Airflow.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

from transforms import settings

COMPONENTS = ("api-server", "scheduler", "dag-processor")
ADMIN = "admin"
# The scheduler's LocalExecutor forks its workers, and each worker forks the process of every task
# it runs: what the scheduler imported, every task process starts with. So the scheduler is started
# with the libraries of the load path and of dbt already imported (Great Expectations takes ~4 s of
# CPU to import, dbt ~2.5 s), not each load task and each dbt node again. The other components
# start as plain `airflow`.
_WARM_SCHEDULER = ("import sys, transforms.load, great_expectations.data_context, dbt.cli.main, dbt.adapters.duckdb, "
                   "cosmos; "
                   "from airflow.__main__ import main; sys.argv = ['airflow', 'scheduler']; sys.exit(main())")


def _component_command(component: str) -> list[str]:
    if component == "scheduler":
        return [sys.executable, "-c", _WARM_SCHEDULER]
    return ["airflow", component]


def airflow_home(root: Path) -> Path:
    return settings.state_dir(root) / "airflow"


def _secret(root: Path, name: str, make) -> str:
    path = settings.state_dir(root) / "secrets" / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(make())
    return path.read_text().strip()


def port() -> int:
    return int(os.environ.get("QALA_AIRFLOW_PORT", "8080"))


def airflow_env(root: Path) -> dict[str, str]:
    """The environment every Airflow process of this warehouse runs with."""
    from base64 import urlsafe_b64encode

    env = dict(os.environ)
    env.update(
        QALA_HOME=str(settings.REPO_ROOT),
        QALA_WAREHOUSE=str(root),
        QALA_AIRFLOW_PORT=str(port()),
        AIRFLOW_HOME=str(airflow_home(root)),
        AIRFLOW_CONFIG=str(settings.REPO_ROOT / "airflow.cfg"),
        AIRFLOW__API_AUTH__JWT_SECRET=_secret(root, "airflow_jwt_secret", lambda: secrets.token_urlsafe(32)),
        AIRFLOW__CORE__FERNET_KEY=_secret(root, "airflow_fernet_key",
                                          lambda: urlsafe_b64encode(secrets.token_bytes(32)).decode()),
        # One DuckDB thread per task process: airflow.cfg's two task slots share the two cores.
        QALA_DUCKDB_THREADS=os.environ.get("QALA_DUCKDB_THREADS") or "1",
        GX_ANALYTICS_ENABLED="False",
        DBT_SEND_ANONYMOUS_USAGE_STATS="False",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    return env


def passwords_file(root: Path) -> Path:
    return airflow_home(root) / "simple_auth_manager_passwords.json.generated"


def ensure_airflow(root: Path) -> str | None:
    """Create this warehouse's Airflow metadata DB and admin login if missing.
    Returns the admin password the first time (to print once), else None."""
    home = airflow_home(root)
    home.mkdir(parents=True, exist_ok=True)
    created = None
    if not passwords_file(root).exists():
        created = secrets.token_urlsafe(12)
        fd = os.open(passwords_file(root), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({ADMIN: created}, handle)
    database = home / "airflow.db"
    if not database.exists():
        airflow_cli(root, "db", "migrate", quiet=True)
        # Write-ahead log: readers (the API server) no longer block the scheduler's writes.
        # The mode is stored in the file, so every Airflow process gets it.
        with sqlite3.connect(database) as con:
            con.execute("pragma journal_mode=wal")
    return created


def airflow_cli(root: Path, *args: str, quiet: bool = False) -> subprocess.CompletedProcess:
    result = subprocess.run(["airflow", *args], env=airflow_env(root), text=True,
                            capture_output=quiet)
    if result.returncode != 0:
        raise RuntimeError(f"airflow {' '.join(args)} failed:\n{result.stdout or ''}{result.stderr or ''}")
    return result


class AirflowApiError(RuntimeError):
    def __init__(self, status: int | None, detail: str):
        super().__init__(detail)
        self.status = status


class EmbeddedAirflow:
    """Starts the Airflow components of a warehouse (unless its API server already answers)
    and stops what it started."""

    def __init__(self, root: Path, wait: bool = True):
        self.root = root
        self.wait = wait  # False: start the processes and return; `ready()` waits later
        self.base = f"http://127.0.0.1:{port()}"
        self.processes: list[subprocess.Popen] = []
        self._token: str | None = None

    def __enter__(self) -> "EmbeddedAirflow":
        ensure_airflow(self.root)
        if self._healthy():
            self._check_it_is_ours()
        else:
            self._check_port_free()
            logs = airflow_home(self.root) / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            for component in COMPONENTS:
                out = open(logs / f"{component}.log", "ab")
                self.processes.append(subprocess.Popen(
                    _component_command(component), env=airflow_env(self.root), stdout=out,
                    stderr=subprocess.STDOUT, start_new_session=True))
            if self.wait:
                self.ready()
        return self

    def ready(self) -> "EmbeddedAirflow":
        """Wait until the API server answers (Airflow started with wait=False starts up while
        the caller does other work: `make run` simulates meanwhile)."""
        self._wait(self._healthy, 180, "the Airflow API server to answer")
        return self

    def __exit__(self, *exc) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    def wait_forever(self) -> None:
        while all(p.poll() is None for p in self.processes):
            time.sleep(1)

    # -- REST API -----------------------------------------------------------------------
    def _check_port_free(self) -> None:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port())) == 0:
                raise RuntimeError(
                    f"port {port()} is taken by another program (or another warehouse's Airflow): "
                    f"set QALA_AIRFLOW_PORT to a free port")

    def _check_it_is_ours(self) -> None:
        """An Airflow already answers on the port: use it only if it is this warehouse's (it
        accepts this warehouse's admin password); never trigger runs in someone else's."""
        try:
            self._request("GET", "/api/v2/dags?limit=1")
        except RuntimeError:
            raise RuntimeError(
                f"port {port()} is served by an Airflow that is not this warehouse's ({self.root}): "
                f"stop it, or set QALA_AIRFLOW_PORT to a free port") from None

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base}/api/v2/monitor/health", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def _request(self, method: str, path: str, body: dict | None = None, settled=None) -> dict:
        if self._token is None:
            password = json.loads(passwords_file(self.root).read_text())[ADMIN]
            self._token = self._call("POST", "/auth/token", {"username": ADMIN, "password": password},
                                     auth=False)["access_token"]
        return self._call(method, path, body, settled=settled)

    def _call(self, method: str, path: str, body: dict | None, auth: bool = True,
              attempts: int = 6, settled=None) -> dict:
        """One API call. A 5xx answer (on SQLite, usually a lock held a moment too long by
        another Airflow process) or a timeout is retried with back-off; 4xx answers are final.
        `settled`, when given, is asked before each retry: a request that timed out may still have
        done its work on the server, and what `settled` returns (not None) is then the answer."""
        request = urllib.request.Request(
            self.base + path, method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json",
                     **({"Authorization": f"Bearer {self._token}"} if auth else {})})
        for attempt in range(1, attempts + 1):
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    return json.loads(response.read() or b"{}")
            except urllib.error.HTTPError as error:
                failure = AirflowApiError(error.code, f"Airflow API {method} {path}: {error.code} "
                                                      f"{error.read().decode()[:500]}")
                if error.code < 500:
                    raise failure from None
            except (urllib.error.URLError, TimeoutError) as error:
                failure = AirflowApiError(None, f"Airflow API {method} {path}: {error}")
            if settled is not None and (answer := settled()) is not None:
                return answer
            if attempt == attempts:
                raise failure
            print(f"{failure}; retrying ({attempt}/{attempts - 1})", file=sys.stderr, flush=True)
            time.sleep(2 * attempt)
        raise AssertionError("unreachable")

    def _wait(self, ready, seconds: float, what: str):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if value := ready():
                return value
            if any(p.poll() is not None for p in self.processes):
                raise RuntimeError(f"an Airflow process exited while waiting for {what}; see "
                                   f"{airflow_home(self.root) / 'logs'}")
            time.sleep(2)
        raise TimeoutError(f"gave up waiting {seconds:.0f}s for {what}")

    def wait_for_dags(self, dag_ids: list[str], seconds: float = 240) -> None:
        def parsed() -> bool:
            found = {d["dag_id"] for d in self._request("GET", "/api/v2/dags?limit=100")["dags"]}
            return set(dag_ids) <= found
        self._wait(parsed, seconds, f"the DAG processor to parse {', '.join(dag_ids)}")

    def wait_for_scheduled_runs(self, dag_ids: list[str], seconds: float = 300) -> None:
        """Wait until the scheduler has created the runs that are due and they have finished.
        An Airflow that has just seen its DAGs creates at once the run of each DAG's latest
        interval (catchup is off), while the DAG processor writes the DAGs: a run triggered in
        that moment would queue behind it anyway (max_active_runs=1), and its POST would meet
        both writing to the SQLite metadata DB. A paused DAG is not waited for; if the runs take
        longer than `seconds` (a user's long daily run), the caller goes ahead."""
        def settled() -> bool:
            now = datetime.now(timezone.utc)
            for dag_id in dag_ids:
                dag = self._request("GET", f"/api/v2/dags/{dag_id}")
                due = dag.get("next_dagrun_run_after")
                if not dag["is_paused"] and due and datetime.fromisoformat(due) <= now:
                    return False  # not created yet
                active = self._request("GET", f"/api/v2/dags/{dag_id}/dagRuns?state=queued&state=running&limit=1")
                if active["total_entries"]:
                    return False
            return True
        try:
            self._wait(settled, seconds, "the scheduled runs due at start-up")
        except TimeoutError as error:
            print(f"{error}; triggering anyway (the runs queue behind them)", file=sys.stderr, flush=True)

    def trigger(self, dag_id: str, conf: dict, run_id: str) -> str:
        try:
            self._request("POST", f"/api/v2/dags/{dag_id}/dagRuns",
                          {"dag_run_id": run_id, "logical_date": None, "conf": conf})
        except AirflowApiError as error:
            # A retried POST whose first attempt did create the run: the run id is ours and
            # unique, so "already exists" means it is there.
            if error.status != 409:
                raise
        return run_id

    def wait_for_run(self, dag_id: str, run_id: str, seconds: float = 3600) -> str:
        def finished():
            state = self._request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]
            return state if state in ("success", "failed") else None
        return self._wait(finished, seconds, f"{dag_id} run {run_id}")

    def dag_ids(self) -> list[str]:
        return [d["dag_id"] for d in self._request("GET", "/api/v2/dags?limit=100")["dags"]]

    def dag_run(self, dag_id: str, run_id: str) -> dict:
        """The run (state, start_date, end_date, ...) and its task instances (`tasks`: task_id,
        state, duration in seconds, ...)."""
        run = self._request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
        tasks = self._request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100")
        return {**run, "tasks": tasks["task_instances"]}

    def runs(self, dag_id: str) -> list[dict]:
        return self._request("GET", f"/api/v2/dags/{dag_id}/dagRuns?order_by=-run_after&limit=20")["dag_runs"]

    def asset_events(self, dag_id: str, run_id: str) -> list[dict]:
        """The Asset events a run emitted (its `announce` tasks' outlets)."""
        query = urllib.parse.urlencode({"source_dag_id": dag_id, "source_run_id": run_id, "limit": 100})
        return self._request("GET", f"/api/v2/assets/events?{query}")["asset_events"]

    def wait_for_triggered_run(self, dag_id: str, after: datetime, seconds: float = 3600) -> dict:
        """The asset-triggered run of dag_id queued after `after`, once finished."""
        def finished():
            for run in self.runs(dag_id):
                queued = datetime.fromisoformat(run["queued_at"] or run["run_after"])
                if run["run_type"] == "asset_triggered" and queued >= after and run["state"] in ("success", "failed"):
                    return run
            return None
        return self._wait(finished, seconds, f"the asset-triggered {dag_id} run")


    def backfill(self, dag_id: str, first: datetime, last: datetime, conf: dict) -> int:
        """An Airflow backfill of dag_id: one run per schedule interval whose logical date is in
        [first, last], re-running days that already ran (reprocess_behavior=completed)."""
        # Airflow reads the bounds as UTC dates: give them in UTC, so that the first local day's run
        # (logical date = that day's 00:00 Asia/Almaty = 19:00 UTC the day before) is included.
        first, last = first.astimezone(timezone.utc), last.astimezone(timezone.utc)
        body = {"dag_id": dag_id, "from_date": first.isoformat(), "to_date": last.isoformat(),
                "dag_run_conf": conf, "reprocess_behavior": "completed", "max_active_runs": 1}
        # On SQLite the API answers 503 while another process holds the lock, or the request times
        # out while the server still goes on to create the backfill. So before asking again (and on
        # 409, "already running"), look for the backfill of this range: a second request must not
        # leave us waiting on a backfill that owns no runs.
        def made():
            backfill_id = self._active_backfill(dag_id, first, last)
            return None if backfill_id is None else {"id": backfill_id}

        try:
            return self._request("POST", "/api/v2/backfills", body, settled=made)["id"]
        except AirflowApiError as error:
            if error.status == 409 and (answer := made()) is not None:
                return answer["id"]
            raise

    def _active_backfill(self, dag_id: str, first: datetime, last: datetime) -> int | None:
        """The id of dag_id's running backfill over [first, last], if there is one."""
        query = urllib.parse.urlencode({"dag_id": dag_id, "order_by": "-id", "limit": 5})
        for backfill in self._request("GET", f"/api/v2/backfills?{query}")["backfills"]:
            if (backfill["completed_at"] is None
                    and datetime.fromisoformat(backfill["from_date"]) == first
                    and datetime.fromisoformat(backfill["to_date"]) == last):
                return backfill["id"]
        return None

    def wait_for_backfill(self, backfill_id: int, seconds: float = 7200) -> list[dict]:
        """The backfill's runs, once it has completed."""
        def completed():
            return self._request("GET", f"/api/v2/backfills/{backfill_id}")["completed_at"]
        self._wait(completed, seconds, f"backfill {backfill_id}")
        backfill = self._request("GET", f"/api/v2/backfills/{backfill_id}")
        query = urllib.parse.urlencode({"run_type": "backfill", "logical_date_gte": backfill["from_date"],
                                        "logical_date_lte": backfill["to_date"], "limit": 1000,
                                        "order_by": "logical_date"})
        runs = self._request("GET", f"/api/v2/dags/{backfill['dag_id']}/dagRuns?{query}")["dag_runs"]
        return [r for r in runs if r.get("backfill_id") in (None, backfill_id)]


def run_id(prefix: str) -> str:
    return f"{prefix}__{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}"
