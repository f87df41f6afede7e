"""The embedded Airflow's processes (LocalExecutor, SQLite in the warehouse): their environment,
their metadata DB, and `EmbeddedAirflow`, which starts the API server, scheduler and DAG processor
of a warehouse (unless its API server already answers) and stops what it started.

Airflow is driven from outside, as an engineer would: runs are triggered and watched through the
REST API (`airflow_api.AirflowApi`, which EmbeddedAirflow is); its secrets live in
`airflow_secrets`. Nothing here imports Airflow.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from transforms import settings
from transforms.airflow_api import AirflowApi
from transforms.airflow_secrets import ADMIN, admin_password, airflow_home, create_admin_password, secret

COMPONENTS = ("api-server", "scheduler", "dag-processor")
# The scheduler's LocalExecutor forks its workers, and each worker forks the process of every task
# it runs: what the scheduler imported, every task process starts with. So the scheduler is started
# with the libraries of the load path and of dbt already imported (Great Expectations takes ~4 s of
# CPU to import, dbt ~2.5 s), not each load task and each dbt node again. The other components
# start as plain `airflow`.
_WARM_SCHEDULER = ("import sys, transforms.load, great_expectations.data_context, dbt.cli.main, dbt.adapters.duckdb, "
                   "cosmos; "
                   "from airflow.__main__ import main; sys.argv = ['airflow', 'scheduler', '--skip-serve-logs']; "
                   "sys.exit(main())")
# --skip-serve-logs: the scheduler's log server listens on every interface (0.0.0.0 and [::], port
# 8793, not configurable) to hand task logs to an API server on another host. Here the task logs
# are files on the API server's own disk, which it reads directly; so no listener beyond the API
# server's own on 127.0.0.1.


def _component_command(component: str) -> list[str]:
    if component == "scheduler":
        return [sys.executable, "-c", _WARM_SCHEDULER]
    return ["airflow", component]


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
        AIRFLOW__API_AUTH__JWT_SECRET=secret(root, "airflow_jwt_secret", lambda: secrets.token_urlsafe(32)),
        AIRFLOW__CORE__FERNET_KEY=secret(root, "airflow_fernet_key",
                                          lambda: urlsafe_b64encode(secrets.token_bytes(32)).decode()),
        # One DuckDB thread per task process: airflow.cfg's two task slots share the two cores.
        QALA_DUCKDB_THREADS=os.environ.get("QALA_DUCKDB_THREADS") or "1",
        GX_ANALYTICS_ENABLED="False",
        DBT_SEND_ANONYMOUS_USAGE_STATS="False",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        # Airflow imports `airflow_local_settings` from its path: dags/airflow_local_settings.py
        # keeps the API server's event loop free of SQLite lock waits (it says how).
        PYTHONPATH=os.pathsep.join(filter(None, [str(settings.REPO_ROOT / "dags"), os.environ.get("PYTHONPATH")])),
    )
    return env


def ensure_airflow(root: Path) -> str | None:
    """Create this warehouse's Airflow metadata DB and admin login if missing.
    Returns the admin password the first time (to print once), else None."""
    home = airflow_home(root)
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    created = create_admin_password(root)
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
                            capture_output=quiet, umask=settings.PRIVATE_UMASK)
    if result.returncode != 0:
        raise RuntimeError(f"airflow {' '.join(args)} failed:\n{result.stdout or ''}{result.stderr or ''}")
    return result


class EmbeddedAirflow(AirflowApi):
    """Starts the Airflow components of a warehouse (unless its API server already answers)
    and stops what it started; the REST client of that Airflow meanwhile."""

    def __init__(self, root: Path, wait: bool = True):
        super().__init__(f"http://127.0.0.1:{port()}", ADMIN, lambda: admin_password(root),
                         alive=lambda: all(p.poll() is None for p in self.processes),
                         logs=str(airflow_home(root) / "logs"))
        self.root = root
        self.wait = wait  # False: start the processes and return; `ready()` waits later
        self.processes: list[subprocess.Popen] = []

    def __enter__(self) -> "EmbeddedAirflow":
        # One Airflow per warehouse, however many qala commands use it at once (two `make ingest`
        # side by side): who finds none starts it, holding `start.lock` until its API server
        # answers, so a second command waits for it and then uses it instead of starting a second
        # scheduler and DAG processor on the same SQLite file (whose API server, finding the port
        # taken, exited and ended both commands; the two schedulers' lock waits answered 500s).
        # Every user holds `users.lock` shared; the one that started Airflow stops it only when
        # it can take that lock alone, i.e. after the others are done.
        home = airflow_home(self.root)
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        private = lambda path, flags: os.open(path, flags, 0o600)  # noqa: E731
        self._start_lock = open(home / "start.lock", "a", opener=private)
        self._users_lock = open(home / "users.lock", "a", opener=private)
        fcntl.flock(self._start_lock, fcntl.LOCK_EX)
        try:
            ensure_airflow(self.root)
            if self._healthy():
                self._check_it_is_ours()
            else:
                self._check_port_free()
                logs = home / "logs"
                logs.mkdir(mode=0o700, parents=True, exist_ok=True)
                for component in COMPONENTS:
                    out = open(logs / f"{component}.log", "ab", opener=private)
                    self.processes.append(subprocess.Popen(
                        _component_command(component), env={**airflow_env(self.root), "QALA_AIRFLOW_COMPONENT": component},
                        stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                        # whoever started Airflow (the qala CLI, a test), its metadata DB, logs and
                        # task processes (loads, dbt) are private to the warehouse's owner
                        umask=settings.PRIVATE_UMASK))
            fcntl.flock(self._users_lock, fcntl.LOCK_SH)
            if self.wait or not self.processes:
                self.ready()
        except BaseException:
            self.__exit__()
            raise
        return self

    def ready(self) -> "EmbeddedAirflow":
        """Wait until the API server answers (Airflow started with wait=False starts up while
        the caller does other work: `make run` simulates meanwhile); then let other commands in."""
        self._wait(self._healthy, 180, "the Airflow API server to answer")
        fcntl.flock(self._start_lock, fcntl.LOCK_UN)
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self._users_lock, fcntl.LOCK_UN)
        if self.processes:
            fcntl.flock(self._start_lock, fcntl.LOCK_EX)  # no one starts using it meanwhile
            try:
                fcntl.flock(self._users_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                print("Airflow: another qala command still uses this Airflow; stopping it once that is done",
                      file=sys.stderr, flush=True)
                fcntl.flock(self._users_lock, fcntl.LOCK_EX)
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        self._users_lock.close()  # closing releases the locks
        self._start_lock.close()

    def wait_forever(self) -> None:
        while all(p.poll() is None for p in self.processes):
            time.sleep(1)

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
