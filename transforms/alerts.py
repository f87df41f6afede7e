"""The alert log: one JSON line per failed task of a Qala DAG, in
`$QALA_WAREHOUSE/reports/alerts.jsonl`, written by the DAGs' Airflow notifier (it also e-mails
the same text when an SMTP connection is configured). An alert says what failed and what to do
first: for an ingest run, each file that did not publish with its status, reason (which names the
line and the rule) and Data Docs page; for a KPI build, each failed dbt node with dbt's message.
"""

from __future__ import annotations

import fcntl
import json
from datetime import datetime, timezone
from pathlib import Path

from transforms import settings

SMTP_CONNECTION = "qala_alerts"  # an Airflow SMTP connection; its extra holds "to" (and "from_email")


def alerts_path(root: Path | None = None) -> Path:
    return settings.reports_dir(root) / "alerts.jsonl"


def _not_published(run_id: str, root: Path | None) -> list[dict]:
    from transforms.ledger import PUBLISHED, rows_for_run

    try:
        rows = rows_for_run(run_id, root=root)
    except Exception as error:  # the alert goes out even when the lake cannot be read
        return [{"error": f"the ledger could not be read: {error}"}]
    return [{"feed": r["feed"], "source_file": r["source_file"], "batch_id": r["batch_id"], "status": r["status"],
             "reason": r["reason"], "data_docs": r["data_docs"]} for r in rows if r["status"] != PUBLISHED]


def _failed_dbt_nodes(root: Path | None) -> list[dict]:
    from transforms.lake import dbt_results_path

    try:
        results = json.loads(dbt_results_path(root).read_text())["results"]
    except (OSError, ValueError, KeyError):
        return []
    from transforms.lake import explain

    failed = [{"node": r["unique_id"], "status": r["status"], "message": r.get("message")}
              for r in results if r["status"] in ("error", "fail", "runtime error")]
    for node in failed:
        # DuckDB's error about a missing or damaged lake file, quoted by dbt: named with its table and the repair
        damaged = explain(Exception(node["message"] or ""), root, any_error=True) if node["message"] else None
        if damaged is not None:
            node["message"] = f"{damaged} (dbt said: {node['message']})"
    return failed


def compose(dag_id: str, run_id: str, task_id: str, map_index: int | None, try_number: int | None,
            error: str, log_url: str | None, root: Path | None = None) -> dict:
    alert = {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "dag_id": dag_id, "run_id": run_id,
             "task_id": task_id, "map_index": map_index if map_index is not None and map_index >= 0 else None,
             "try_number": try_number, "error": error, "log_url": log_url}
    if dag_id.startswith("ingest_"):
        alert["files_not_published"] = _not_published(run_id, root)
    elif task_id == "dbt_build":
        alert["failed_dbt_nodes"] = _failed_dbt_nodes(root)
    return alert


def record(alert: dict, root: Path | None = None) -> Path:
    """Append the alert as one line; concurrent task processes append whole lines."""
    path = alerts_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(alert, ensure_ascii=False, default=str) + "\n"
    with path.open("a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            handle.write(line)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    return path


def read(root: Path | None = None) -> list[dict]:
    path = alerts_path(root)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def as_text(alert: dict) -> tuple[str, str]:
    """Subject and plain-text body of the alert's e-mail."""
    where = alert["task_id"] + (f"[{alert['map_index']}]" if alert.get("map_index") is not None else "")
    subject = f"[Qala] {alert['dag_id']}: {where} failed ({alert['run_id']})"
    lines = [f"{alert['dag_id']} run {alert['run_id']}: task {where} failed"
             f" (try {alert.get('try_number')}) at {alert['at']}.", "", alert.get("error") or "", ""]
    for row in alert.get("files_not_published", []):
        reason = row.get("reason") or row.get("error") or ""
        named = reason if row.get("source_file", "") in reason else f"{row.get('source_file')}: {reason}"
        lines.append(f"- {row.get('status')}: {named}")  # a ledger reason names its file, line and rule
        if row.get("data_docs"):
            lines.append(f"  Data Docs: {row['data_docs']}")
    for node in alert.get("failed_dbt_nodes", []):
        lines.append(f"- {node['node']}: {node['status']} — {node['message']}")
    if alert.get("log_url"):
        lines += ["", f"Task log: {alert['log_url']}"]
    return subject, "\n".join(lines).strip() + "\n"
