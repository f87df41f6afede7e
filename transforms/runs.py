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
    contract = load_contract(feed)
    pattern = contract.format.get("files", "*")
    base = settings.landing_dir(contract.domain, contract.name, root=root)
    found = []
    for folder in sorted(base.glob("????-??-??")) if base.exists() else []:
        try:
            day = date.fromisoformat(folder.name)
        except ValueError:
            continue
        if first <= day <= last:
            found += sorted(p for p in folder.glob(pattern) if p.is_file())
    return found


def group_files(files: list[Path], first: date, last: date) -> list[list[str]]:
    """The load tasks of a run: one for a single landing day (its files are one batch); for a
    range of days, at most MAX_LOAD_TASKS contiguous groups of near-equal size."""
    if not files:
        return []
    groups = 1 if first == last else min(MAX_LOAD_TASKS, len(files))
    size, extra = divmod(len(files), groups)
    out, start = [], 0
    for index in range(groups):
        end = start + size + (1 if index < extra else 0)
        out.append([str(p) for p in files[start:end]])
        start = end
    return out
