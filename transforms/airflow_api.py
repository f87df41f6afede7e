"""The Airflow REST API (/api/v2) as Qala uses it: a client that logs in as this warehouse's admin,
retries what the embedded Airflow's SQLite may refuse for a moment, and waits for DAGs, runs, Asset
events and backfills. It talks HTTP only: nothing here imports Airflow, and it works against any
Airflow 3 API server (`orchestrate.EmbeddedAirflow` is the one `make run` starts).
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import datetime, timezone

class AirflowApiError(RuntimeError):
    def __init__(self, status: int | None, detail: str):
        super().__init__(detail)
        self.status = status


class AirflowApi:
    """A client of one Airflow API server, logged in with `password()` (read when first needed).
    `alive` is asked while waiting: False (a component process died) ends the wait at once."""

    def __init__(self, base: str, user: str, password: Callable[[], str], alive: Callable[[], bool] = lambda: True,
                 logs: str = "the Airflow logs"):
        self.base, self.user, self.password, self.alive, self.logs = base, user, password, alive, logs
        self._token: str | None = None

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base}/api/v2/monitor/health", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def _request(self, method: str, path: str, body: dict | None = None, settled=None) -> dict:
        if self._token is None:
            self._token = self._call("POST", "/auth/token", {"username": self.user, "password": self.password()},
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
            if not self.alive():
                raise RuntimeError(f"an Airflow process exited while waiting for {what}; see {self.logs}")
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
