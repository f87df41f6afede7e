"""Builds Qala's DAGs from the feed contracts. DAG files only call these functions.

Kept light on purpose: the scheduler parses DAG files often, so nothing heavy (polars,
great_expectations, dbt) is imported here; task bodies import transforms when they run.
"""

from __future__ import annotations

import html
import logging
from datetime import timedelta

import pendulum
from airflow.sdk import Asset, BaseNotifier, Param, TaskGroup, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from airflow.timetables.interval import CronDataIntervalTimetable

from transforms.contract import feeds_of_domain, load_contract

LOCAL_TZ = "Asia/Almaty"
START = pendulum.datetime(2024, 1, 1, tz=LOCAL_TZ)
log = logging.getLogger(__name__)


def silver_asset(feed: str) -> Asset:
    contract = load_contract(feed)
    return Asset(name=f"silver.{contract.table}", uri=f"qala://lake/silver/{contract.table}")


def _window(context) -> tuple:
    from transforms.runs import landing_window

    return landing_window(context["dag_run"].conf, context.get("data_interval_start"),
                          context.get("data_interval_end"), context.get("logical_date"))


@task
def find_landed_files(feed: str) -> list[list[str]]:
    from transforms.runs import group_files, landed_files

    first, last = _window(get_current_context())
    files = landed_files(feed, first, last)
    log.info("%s: %d file(s) landed for %s .. %s", feed, len(files), first, last)
    if not files:
        # Nothing to load: the feed's other tasks are skipped without starting a process.
        raise AirflowSkipException(f"{feed}: no file landed for {first} .. {last}")
    return group_files(files, first, last)


class QalaAlert(BaseNotifier):
    """Every failed task of a Qala DAG: a line in the warehouse's alert log
    (`reports/alerts.jsonl`, what failed and why, file by file or dbt node by dbt node), and the
    same text by e-mail through the Airflow SMTP connection `qala_alerts` when it exists."""

    def notify(self, context) -> None:
        from transforms import alerts

        ti = context["ti"]
        alert = alerts.compose(ti.dag_id, ti.run_id, ti.task_id, getattr(ti, "map_index", None),
                               getattr(ti, "try_number", None), str(context.get("exception") or ""),
                               getattr(ti, "log_url", None))
        path = alerts.record(alert)
        log.error("alert recorded in %s", path)
        try:
            from airflow.sdk import Connection

            connection = Connection.get(alerts.SMTP_CONNECTION)
        except Exception:  # no such connection: the log only
            return
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        extra = connection.extra_dejson
        subject, body = alerts.as_text(alert)
        # notify() itself, not the notifier called: the text is sent as it is, never rendered as a template
        SmtpNotifier(to=extra["to"], from_email=extra.get("from_email") or "qala-alerts@localhost",
                     smtp_conn_id=alerts.SMTP_CONNECTION, subject=subject,
                     html_content=f"<pre>{html.escape(body)}</pre>").notify(context)
        log.error("alert e-mailed to %s", extra["to"])


ALERTS = {"on_failure_callback": [QalaAlert()]}
# An ingest task whose process lost the API server (SQLite-backed Airflow under a history run's
# start: a minute without answers was seen, and two find_landed_files tasks died of it) runs
# again; `check` fails with AirflowFailException, which is never retried, and the alert fires
# only when the last try failed.
INGEST_DEFAULTS = {**ALERTS, "retries": 2, "retry_delay": timedelta(seconds=15)}

PSEUDONYMISATION_CONNECTION = "qala_pseudonymisation"


def _pseudonymisation_key_from_connection() -> None:
    """The HMAC key may live in an Airflow connection `qala_pseudonymisation` (its password);
    if it exists it wins over the environment, and the dev key is never generated."""
    import os

    from airflow.sdk import Connection

    from transforms.pseudonymise import KEY_ENV

    try:
        connection = Connection.get(PSEUDONYMISATION_CONNECTION)
    except Exception:  # no such connection: the environment or the dev key
        return
    if connection.password:
        os.environ[KEY_ENV] = connection.password


@task(retries=2, retry_delay=timedelta(seconds=30), map_index_template="{{ landed }}")
def load(feed: str, files: list[str]) -> dict:
    from pathlib import Path

    from transforms.ledger import PUBLISHED
    from transforms.load import LoadFailure, load_files

    context = get_current_context()
    _pseudonymisation_key_from_connection()
    # What the Airflow UI shows for this mapped task: the file, or the range of landing days.
    first, last = Path(files[0]), Path(files[-1])
    context["landed"] = (f"{first.parent.name}/{first.name}" if len(files) == 1 else
                         f"{first.parent.name} .. {last.parent.name} ({len(files)} files)")

    def report(row) -> None:
        log.log(logging.INFO if row.status == "published" else logging.ERROR,
                "%s → %s: %d in = %d published + %d quarantined; snapshot %s; %s; Data Docs: %s",
                row.source_file, row.status, row.rows_in, row.rows_published, row.rows_quarantined,
                row.snapshot_id, row.reason or "no remarks", row.data_docs)

    try:
        rows = load_files(feed, files, run_id=context["run_id"], on_batch=report)
    except LoadFailure as failure:
        # The files are wrong, not the machinery: every file has its ledger row and the good
        # ones are published, so this task succeeds (a retry cannot help) and `check` fails the
        # run listing the bad files. An unexpected error still fails this task, with retries.
        log.error("%s", failure)
        rows = failure.rows
    return {"files": len(rows), "rows_published": sum(r.rows_published for r in rows),
            "files_not_published": sum(r.status != PUBLISHED for r in rows)}


@task(trigger_rule="all_done_min_one_success")
def announce(feed: str) -> dict:
    """Emit the silver Asset once per run when anything was published, so build_kpis runs once
    (also when one of several load tasks crashed: what the others published is announced)."""
    from transforms.ledger import PUBLISHED, rows_for_run

    context = get_current_context()
    if not context["params"].get("announce", True):
        raise AirflowSkipException(f"{feed}: this run was asked not to announce (its caller builds the KPIs once)")
    published = [r for r in rows_for_run(context["run_id"], feed) if r["status"] == PUBLISHED]
    if not published:
        raise AirflowSkipException(f"{feed}: nothing published in this run")
    extra = {"batches": len(published), "rows_published": sum(r["rows_published"] for r in published),
             "snapshot_id": max(r["snapshot_id"] for r in published)}
    context["outlet_events"][silver_asset(feed)].extra = extra
    return extra


@task
def check(feed: str) -> None:
    """Fail the run when a landed file of its days has no ledger row, or did not publish, listing
    each with why (the ledger says it too); name the files the feed does not read. It runs after
    every load task succeeded; a load task that itself failed fails the run through this task's
    upstream_failed (a run's state is that of its last tasks)."""
    from transforms.runs import verdict

    context = get_current_context()
    failures, remarks = verdict(feed, context["run_id"], *_window(context))
    if remarks:
        log.warning("%s", "\n".join(remarks))
    if failures:
        raise AirflowFailException("\n".join(failures + remarks))  # each reason names its file


def ingest_dag(domain: str):
    feeds = feeds_of_domain(domain)

    @dag(
        dag_id=f"ingest_{domain}",
        schedule=CronDataIntervalTimetable("0 0 * * *", timezone=LOCAL_TZ),
        start_date=START,
        catchup=False,
        max_active_runs=1,
        default_args=INGEST_DEFAULTS,
        tags=["ingest", domain],
        params={
            "landing_from": Param(None, type=["null", "string"], format="date",
                                  description="First landing day to load (history/repair runs)"),
            "landing_to": Param(None, type=["null", "string"], format="date",
                                description="Last landing day to load, inclusive"),
            "announce": Param(True, type="boolean",
                              description="Emit the silver Assets (which trigger build_kpis). `make run` turns it "
                                          "off for its history runs and builds the KPIs once, after all of them."),
        },
        doc_md=f"""
### ingest_{domain}
Loads the landed exports of {', '.join(f'`{f}`' for f in feeds)} into the lake.

* **Daily** (scheduled): each run loads the landing day of its data interval (Asia/Almaty).
* **History / repair**: trigger with conf `{{"landing_from": "YYYY-MM-DD", "landing_to": "YYYY-MM-DD"}}`
  to load a range of days in one run (`make run` does this for its whole history).

Per feed: `find_landed_files` → `load` (mapped: one task for a day's files; a range of days is
cut into at most `QALA_MAX_LOAD_TASKS` tasks) → `announce` (emits the feed's silver Asset if
anything was published) and `check` (fails the run listing every landed file that did not publish or
has no ledger row; names the files the feed does not read, whose `not_read` rows say why).
A load task's files are checked, gated and published in batches (a day, or up to a month in a
history run): one lake transaction each; every file has its row in `ops.load_ledger`, which
says why when it did not publish.
""",
    )
    def ingest():
        for feed in feeds:
            contract = load_contract(feed)
            with TaskGroup(group_id=contract.name):
                # find_landed_files inherits the weight (weight_rule "downstream"), so the heavy
                # feeds' tasks are also the first to be found.
                loaded = (load.override(priority_weight=contract.load_weight).partial(feed=feed)
                          .expand(files=find_landed_files(feed)))
                loaded >> [announce.override(outlets=[silver_asset(feed)])(feed), check(feed)]

    return ingest()


def build_kpis_dag():
    from cosmos import ProfileConfig
    from cosmos.operators.local import DbtBuildLocalOperator

    from transforms.contract import all_feeds
    from transforms.settings import DBT_PROJECT_DIR, REPO_ROOT

    assets = [silver_asset(feed) for feed in all_feeds()]
    schedule = assets[0]
    for asset in assets[1:]:
        schedule = schedule | asset

    class LakeDbtBuild(DbtBuildLocalOperator):
        """cosmos's `dbt build`, holding the lake's writer lock: a load that publishes meanwhile
        waits for the build at its commit instead of meeting it in the SQLite catalog, where one
        of the two would be refused ("database is locked", duckdb/ducklake#1309)."""

        def execute(self, context, **kwargs):
            from transforms.lake import explain, writer_lock

            with writer_lock():
                try:
                    return super().execute(context, **kwargs)
                except Exception as error:
                    # a lake data file missing or damaged under the catalog: the error names it,
                    # its table and `qala repair` (dbt's own text only quotes DuckDB's)
                    damaged = explain(error, any_error=True)
                    if damaged is not None:
                        raise damaged from error
                    raise

    @dag(
        dag_id="build_kpis",
        schedule=schedule,
        start_date=START,
        catchup=False,
        max_active_runs=1,
        default_args=ALERTS,
        tags=["kpi", "dbt"],
        doc_md="""
### build_kpis
Runs whenever a silver table changes (any silver Asset event): `dbt_build` runs the dbt project in
`dbt_project/` — seeds, staging, intermediate and marts with their tests — as ONE `dbt build`
(astronomer-cosmos's DbtBuildLocalOperator), producing `marts.kpi_values` and `marts.kpi_scorecard`;
then `write_scorecard` writes the ministers' page `reports/scorecard.html` (and `.pdf`).

A failed build names its failed models and tests in the task's error, and every node's status
and time is in `state/dbt/run_results.json` of the warehouse (kept after each build, failed or not).
""",
    )
    def build_kpis():
        build = LakeDbtBuild(
            task_id="dbt_build",
            project_dir=DBT_PROJECT_DIR,
            profile_config=ProfileConfig(profile_name="qala", target_name="lake",
                                         profiles_yml_filepath=DBT_PROJECT_DIR / "profiles.yml"),
            dbt_executable_path=str(REPO_ROOT / ".venv" / "bin" / "dbt"),
            install_deps=False,
            emit_datasets=False,
            callback="transforms.lake.keep_dbt_results",
        )
        build >> write_scorecard()

    return build_kpis()


# After a successful build only: with all_done it would be the run's one leaf and turn a failed dbt
# node's run green. A failed build leaves the last page, which names the lake snapshot it shows.
@task(retries=0)
def write_scorecard() -> None:
    """reports/scorecard.html (and .pdf where Chromium is installed) from the marts just built."""
    from transforms import scorecard

    page, pdf = scorecard.write()
    log.info("scorecard written: %s%s", page, f" and {pdf}" if pdf else " (no PDF: Chromium is not installed)")
