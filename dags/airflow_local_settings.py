"""Airflow's local settings for Qala's embedded Airflow (not a DAG file: .airflowignore skips it).

Airflow imports `airflow_local_settings` in every one of its processes; `orchestrate.airflow_env`
puts this folder on PYTHONPATH so that it is found. It does two things, in the API server only,
each the removal of a root cause of the HTTP 500s issue 20 found:

**The audit-log write is taken off the API server's event loop.** Airflow 3.3's `action_logging`
dependency (airflow/api_fastapi/logging/decorators.py, on every POST/PATCH/DELETE of the public
API: a trigger, a pause, a backfill) is an `async def` that calls the synchronous
`session.commit()` of its INSERT INTO log. On SQLite that INSERT waits for the database's one
write lock, up to the 60 s busy timeout (transforms/airflow_db.py), and it waits ON the event loop
thread: every request of the API server, the execution API that task processes heartbeat through
included, stands still meanwhile. When the lock is held by another request of the same API server
(a trigger that has flushed its dag_run, an execution-API call that has written a task state: sync
endpoints, whose session is committed after a hop back through the event loop), the holder cannot
commit until the loop runs again, and the loop does not run until the waiter gives up: a deadlock
that lasts exactly the busy timeout and ends in "database is locked", an HTTP 500
("Error with id ..., statement: INSERT INTO log ..." in the API server's log), and a minute in
which task processes lost the API server. Measured: with an outside connection holding the write
lock, a PATCH of a DAG and a GET of /api/v2/monitor/health sent during it both took 60.0 s; the
PATCH answered 500.

Here the same dependency runs Airflow's own code unchanged, except that its commit is done in a
worker thread (`anyio.to_thread`), so a wait for the lock blocks that request only. Nothing in
Airflow's installed files changes; the replacement is put in place when Airflow's module is first
imported, before any route takes the dependency. On PostgreSQL the wait is short and the change
is harmless.

**A run created by an Asset event may have no start date yet.** GET /api/v2/assets/events (which
`make ingest` asks after each run, and the UI's Asset pages) lists with each event the runs it
created; Airflow 3.3.2 declares their `start_date` required (`DagRunAssetReference` in
core_api/datamodels/assets.py), but a run the scheduler has just queued, or one that was cleared,
has none. The answer then fails its own response validation ("Exception in ASGI application",
`created_dagruns.0.start_date Input should be a valid datetime`), an HTTP 500 whenever the request
falls in the few milliseconds between build_kpis's run being queued and started: seen in CI on
2026-12-04. This is apache/airflow#71360, fixed upstream by #71361 (`start_date: datetime | None`)
after 3.3.2; the same one-line change is made here to the model, before any route is built on it.
The execution API's copy of the model (read by tasks through `inlet_events`, which Qala's DAGs do
not use) is left as it is: the task SDK's client model would refuse a null there anyway.
"""

import importlib.abc
import importlib.machinery
import os
import sys

def _in_api_server() -> bool:
    return os.environ.get("QALA_AIRFLOW_COMPONENT") == "api-server" or "api-server" in sys.argv[1:2]


class _CommitLater:
    """The request's session as Airflow's log_action sees it: everything passes through to the
    session but `commit`, which is only noted, and done afterwards off the event loop."""

    def __init__(self, session):
        self._session = session
        self.commit_asked = False

    def commit(self) -> None:
        self.commit_asked = True

    def __getattr__(self, name):
        return getattr(self._session, name)


def _commit_off_the_event_loop(decorators) -> None:
    from anyio import to_thread

    airflows_action_logging = decorators.action_logging
    # The annotations FastAPI reads to inject the same request, session and user as Airflow's.
    Request, SessionDep, GetUserDep = decorators.Request, decorators.SessionDep, decorators.GetUserDep

    def action_logging(event=None):
        airflows_log_action = airflows_action_logging(event)

        async def log_action(request: Request, session: SessionDep, user: GetUserDep):
            deferred = _CommitLater(session)
            await airflows_log_action(request, deferred, user)
            if deferred.commit_asked:
                await to_thread.run_sync(session.commit)

        return log_action

    action_logging.qala_commit_off_the_event_loop = True
    decorators.action_logging = action_logging


def _start_date_may_be_null(assets) -> None:
    from datetime import datetime

    reference = assets.DagRunAssetReference
    reference.model_fields["start_date"].annotation = datetime | None
    reference.model_rebuild(force=True)
    # The models that hold it were built on its old schema: rebuild them, innermost first.
    assets.AssetEventResponse.model_rebuild(force=True)
    assets.AssetEventCollectionResponse.model_rebuild(force=True)
    reference.qala_start_date_may_be_null = True


_PATCHES = {"airflow.api_fastapi.logging.decorators": _commit_off_the_event_loop,
            "airflow.api_fastapi.core_api.datamodels.assets": _start_date_may_be_null}


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Finds the Airflow modules of _PATCHES as usual and patches each right after it has run,
    before a route module imports its names."""

    def find_spec(self, name, path, target=None):
        if name not in _PATCHES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_patch(module):
            exec_module(module)
            _PATCHES[name](module)

        spec.loader.exec_module = exec_then_patch
        return spec


if _in_api_server():
    for _name, _patch in _PATCHES.items():
        if _name in sys.modules:
            _patch(sys.modules[_name])
    sys.meta_path.insert(0, _PatchOnImport())
