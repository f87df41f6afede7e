"""Airflow's local settings for Qala's embedded Airflow (not a DAG file: .airflowignore skips it).

Airflow imports `airflow_local_settings` in every one of its processes; `orchestrate.airflow_env`
puts this folder on PYTHONPATH so that it is found. It does one thing, in the API server only:

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
"""

import importlib.abc
import importlib.machinery
import os
import sys

_DECORATORS = "airflow.api_fastapi.logging.decorators"


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


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Finds Airflow's decorators module as usual and replaces `action_logging` right after the
    module has run, before a route module imports the name."""

    def find_spec(self, name, path, target=None):
        if name != _DECORATORS:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_patch(module):
            exec_module(module)
            _commit_off_the_event_loop(module)

        spec.loader.exec_module = exec_then_patch
        return spec


if _in_api_server():
    if _DECORATORS in sys.modules:
        _commit_off_the_event_loop(sys.modules[_DECORATORS])
    else:
        sys.meta_path.insert(0, _PatchOnImport())
