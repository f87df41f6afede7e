"""What one ingest run loads: the landing days it covers and the files it finds there.

A daily scheduled run covers its data interval (one day, Asia/Almaty). A history or repair run
names its days in the run's conf (`landing_from`, `landing_to`, inclusive), so a year of
history is ONE Airflow run instead of 365: Airflow's per-run overhead never dominates.
"""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from transforms import settings
from transforms.contract import load_contract

# Each load task pays for a process and for importing Great Expectations (~5-13 s), so a long
# history is one task per feed by default (the feeds of a domain fill the two task slots of
# airflow.cfg); set QALA_MAX_LOAD_TASKS=2 to split one feed's history over both slots;
# a day's files are one task and one batch.
MAX_LOAD_TASKS = int(os.environ.get("QALA_MAX_LOAD_TASKS", "1"))


def landing_window(conf: dict | None, interval_start: datetime | None, interval_end: datetime | None,
                   logical_date: datetime | None) -> tuple[date, date]:
    """Inclusive landing days a run covers."""
    conf = conf or {}
    if conf.get("landing_from") or conf.get("landing_to"):
        first = date.fromisoformat(conf.get("landing_from") or conf["landing_to"])
        last = date.fromisoformat(conf.get("landing_to") or conf["landing_from"])
        if last < first:
            raise ValueError(f"landing_to {last} is before landing_from {first}")
        return first, last
    tz = ZoneInfo(settings.LOCAL_TZ)
    if interval_start and interval_end and interval_end > interval_start:
        first = interval_start.astimezone(tz).date()
        return first, max(first, (interval_end.astimezone(tz) - timedelta(microseconds=1)).date())
    day = (logical_date or interval_start or datetime.now(tz)).astimezone(tz).date()
    return day, day


def landed_files(feed: str, first: date, last: date, root: Path | None = None) -> list[Path]:
    """Every file landed in the feed's day folders from `first` to `last`: what a run loads and
    must account for (the loader sorts them: `readers.sort_landed`)."""
    contract = load_contract(feed)
    base = settings.landing_dir(contract.domain, contract.name, root=root)
    found = []
    for folder in sorted(base.glob("????-??-??")) if base.exists() else []:
        try:
            day = date.fromisoformat(folder.name)
        except ValueError:
            continue
        if first <= day <= last:
            # every entry but a sub-folder: a symbolic link or a special file is accounted for too
            found += sorted(p for p in folder.iterdir() if p.is_symlink() or not p.is_dir())
    return found


def batch_files(feed: str, first: date, last: date, root: Path | None = None) -> list[Path]:
    """The landed files the feed reads as batches (each with its own ledger row): for most feeds
    the files its contract's `format.files` matches; for FHIR the manifests, or the NDJSON files
    of an export without one."""
    from transforms.readers import sort_landed

    return sort_landed(load_contract(feed), landed_files(feed, first, last, root)).batches


def unaccounted(feed: str, files: list[Path], ledger_files: set[str], root: Path | None = None) -> list[str]:
    """The landed `files` that no ledger row accounts for: neither a row of their own in
    `ledger_files` (the source files of the run's rows), nor a row of the manifest that lists
    them. A run that leaves any is a failed run."""
    from transforms.readers import sort_landed

    landed = sort_landed(load_contract(feed), files)
    missing = []
    for path in files:
        label = settings.label_of(path, root)
        owner = landed.members.get(path)
        if label not in ledger_files and (owner is None or settings.label_of(owner, root) not in ledger_files):
            missing.append(label)
    return missing


def verdict(feed: str, run_id: str, first: date, last: date, root: Path | None = None) -> tuple[list[str], list[str]]:
    """What a run's `check` says of a feed: (failures, remarks). A failure is a landed file left
    without a ledger row, or one that failed or was blocked; a remark is a file the feed does not
    read (its `not_read` row says why: a misnamed export is lost data until someone looks)."""
    from transforms.ledger import NOT_READ, PUBLISHED, rows_for_run

    from dataclasses import asdict

    from transforms.ledger import pending

    rows = rows_for_run(run_id, feed, root)
    # Rows a full disk kept in state/ledger_pending.jsonl (the next load writes them): they account
    # for their files, whose reason then says "no space left on device", not "no ledger row".
    written = {r["source_file"] for r in rows}
    rows += [asdict(r) for r in pending(root) if r.run_id == run_id and r.feed == feed and r.source_file not in written]
    files = landed_files(feed, first, last, root)
    failures = [f"  no ledger row: {label}" for label in unaccounted(feed, files, {r["source_file"] for r in rows}, root)]
    failures += [f"  {r['status']}: {r['reason']}" for r in rows if r["status"] not in (PUBLISHED, NOT_READ)]
    remarks = [f"  {NOT_READ}: {r['reason']}" for r in rows if r["status"] == NOT_READ]
    if failures:
        failures.insert(0, f"{feed}: {len(failures)} landed file(s) not published or not accounted for:")
    if remarks:
        remarks.insert(0, f"{feed}: {len(remarks)} landed file(s) this feed does not read:")
    return failures, remarks


def group_files(files: list[Path], first: date, last: date) -> list[list[str]]:
    """The load tasks of a run: one for a single landing day (its files are one batch); for a
    range of days, at most MAX_LOAD_TASKS contiguous groups of near-equal size, never cutting a
    day (a FHIR manifest and the files it lists load together)."""
    if not files:
        return []
    days: dict[Path, list[Path]] = {}
    for path in files:
        days.setdefault(path.parent, []).append(path)
    folders = list(days.values())
    groups = 1 if first == last else min(MAX_LOAD_TASKS, len(folders))
    size, extra = divmod(len(folders), groups)
    out, start = [], 0
    for index in range(groups):
        end = start + size + (1 if index < extra else 0)
        out.append([str(p) for folder in folders[start:end] for p in folder])
        start = end
    return out
