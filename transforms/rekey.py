"""Rotate the pseudonymisation key: `qala rekey` (`make rekey`).

A hash cannot be re-keyed without the value it hides, and HMAC(new, old hash) would keep the old
key alive inside the new hashes; but landing/ keeps every export as received (replay.py), so the
rotation loads every landed file of each feed that has `hash` columns again, through the same
load path (`load_files`), under the new key. A load replaces a file's rows in silver and
quarantine in one transaction, so each file moves from the old key to the new one at once. Then
dbt rebuilds what it derives from those silver tables (`--full-refresh`, so an incremental model
keeps no row hashed under the old key), and only then is the new key moved into place and the old
one destroyed.

Steps, each safe to repeat (a rotation killed at any instant completes, with the same new key,
when `qala rekey` runs again):

1. start   a new key in state/secrets/pseudonymisation.key.next (0600, written and synced before
           anything uses it), and state/secrets/pseudonymisation.rotation.json: the run id
           (`rekey__<UTC time>`, the run_id of the rotation's ledger rows), the new key's
           fingerprint, the mode. From here on a load of a hashing feed under another key is
           refused (pseudonymise.check_key, at a batch's start and inside its publish transaction):
           its files get `failed` ledger rows saying so, Airflow retries the task, and the rotation
           loads those files too (their latest ledger row is not the rotation's).
2. reload  per feed with `hash` columns, every file of the ledger (ops.load_ledger) whose latest
           row is not yet the rotation's, under the new key; ledger rows with the rotation's run id.
3. verify  no row of those feeds' silver and quarantine tables is left from a batch before the
           rotation (a file published by a load that raced the start is loaded once more; what is
           still stale stops the rotation, named, before any key is touched).
4. derive  `dbt build --full-refresh` of every model downstream of the re-keyed silver tables (when
           dbt has built anything in this warehouse), and the 64-hex values (HMACs) in the old
           batches' ops.gate_results examples blanked.
5. finish  under the lake writer lock: verify again, the new key renamed over the old one (the old
           is gone), the key's fingerprint pinned (pseudonymisation.fingerprint), the state file
           removed.

An environment-held key ($QALA_PSEUDONYMISATION_KEY, or the Airflow connection qala_pseudonymisation
that the DAGs copy into it) is not Qala's to replace: the operator puts the new key in
$QALA_PSEUDONYMISATION_KEY_NEXT and runs `qala rekey`; step 5 then pins the new key's fingerprint
and says to move the new key into QALA_PSEUDONYMISATION_KEY (and the connection): until then,
loads under the old key are refused. Without _NEXT the command refuses and says this.

Not re-keyed, by design: DuckLake's older snapshots (time travel) still reference the Parquet files
written under the old key; `--expire-snapshots` expires every snapshot before the rotation and
deletes those files (time travel then starts at the rotation).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from transforms import lake, settings
from transforms.contract import all_feeds, load_contract
from transforms.ledger import FAILED, NOT_READ
from transforms.load import LoadFailure, load_files
from transforms.pseudonymise import (KEY_ENV, NEXT_KEY_ENV, configured_key, fingerprint, key_file, next_key_file,
                                     pin_file, rotation, rotation_file, write_secret)

FILE, ENV = "file", "env"
_HEX64 = "[0-9a-f]{64}"


class RekeyRefused(RuntimeError):
    """The rotation cannot start or continue; the message says what to do."""


@dataclass
class Summary:
    run_id: str
    mode: str
    resumed: bool
    feeds: dict[str, dict] = field(default_factory=dict)  # feed → {"files": n, "rows": n}
    dbt: str = ""
    seconds: float = 0.0
    done: bool = False


def hashed_feeds() -> list[str]:
    """The feeds whose contracts hash a column: the only ones a key reaches."""
    return [f for f in all_feeds() if any("hash" in t.pii.values() for t in load_contract(f).tables)]


def hashed_tables() -> list[str]:
    return [t.silver for f in hashed_feeds() for t in load_contract(f).tables]


def files_to_rekey(con, feed: str, run_id: str) -> list[str]:
    """The feed's files in the ledger whose latest row is not the rotation's (or the rotation's but
    failed: tried again), other than files the feed does not read (they carry no records)."""
    return [r for (r,) in con.execute(
        """select source_file from ops.load_ledger where feed = ?
           group by source_file
           having max_by(status, finished_at) <> ?
              and (max_by(run_id, finished_at) is distinct from ? or max_by(status, finished_at) = ?)
           order by source_file""", [feed, NOT_READ, run_id, FAILED]).fetchall()]


def _failed(con, feed: str, run_id: str) -> set[str]:
    """The feed's files whose latest row is the rotation's own `failed` (not tried twice in one run)."""
    return {r for (r,) in con.execute(
        """select source_file from ops.load_ledger where feed = ? group by source_file
           having max_by(run_id, finished_at) = ? and max_by(status, finished_at) = ?""",
        [feed, run_id, FAILED]).fetchall()}


def stale_files(con, run_id: str) -> dict[str, list[str]]:
    """Per silver/quarantine table of the hashed feeds: the files with rows from a batch that is
    not the rotation's, i.e. still under the old key (one query: each statement on the lake costs
    a look at its catalog)."""
    parts = [f"""select '{layer}.{table}' as name, _source_file from {layer}.{table}
                 where _batch_id not in (select batch_id from rotation_batches)"""
             for table in hashed_tables() for layer in ("silver", "quarantine")]
    rows = con.execute(f"""with rotation_batches as (select batch_id from ops.load_ledger where run_id = ?)
                           select distinct name, _source_file from ({' union all '.join(parts)}) order by all""",
                       [run_id]).fetchall()
    stale: dict[str, list[str]] = {}
    for name, label in rows:
        stale.setdefault(name, []).append(label)
    return stale


CONNECTION = "qala_pseudonymisation"  # the DAGs copy its password into $QALA_PSEUDONYMISATION_KEY


def _connection_holds_key(root: Path) -> bool:
    """Whether the DAGs take the key from the Airflow connection (its environment variable, or a row
    in this warehouse's embedded metadata DB): a shell without the variable would otherwise rotate
    the file key that the DAGs do not use. Read with sqlite3: transforms never imports Airflow."""
    import sqlite3

    from transforms.airflow_secrets import airflow_home

    if os.environ.get(f"AIRFLOW_CONN_{CONNECTION.upper()}"):
        return True
    database = airflow_home(root) / "airflow.db"
    if not database.exists():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)) as con:
            return con.execute("select 1 from connection where conn_id = ?", [CONNECTION]).fetchone() is not None
    except sqlite3.Error:
        return False


def _mode(root: Path) -> str:
    if not os.environ.get(KEY_ENV) and _connection_holds_key(root):
        raise RekeyRefused(
            f"the DAGs take the pseudonymisation key from the Airflow connection {CONNECTION}, not from "
            f"{key_file(root)}: export its key as {KEY_ENV} and a new key (e.g. `openssl rand -hex 32`) as "
            f"{NEXT_KEY_ENV}, run `qala rekey` again, and when it completes put the new key in the connection")
    if os.environ.get(KEY_ENV):
        if not os.environ.get(NEXT_KEY_ENV):
            raise RekeyRefused(
                f"the pseudonymisation key comes from the environment ({KEY_ENV}, or the Airflow connection "
                f"qala_pseudonymisation), which Qala does not own: generate a new key (e.g. `openssl rand -hex 32`), "
                f"put it in {NEXT_KEY_ENV} beside the old one and run `qala rekey` again; when it completes, "
                f"move the new key into {KEY_ENV} (and the connection) and remove {NEXT_KEY_ENV}")
        if os.environ[NEXT_KEY_ENV] == os.environ[KEY_ENV]:
            raise RekeyRefused(f"{NEXT_KEY_ENV} holds the same key as {KEY_ENV}: put a new key in it")
        return ENV
    return FILE


def _start(root: Path, out: Callable[[str], None]) -> tuple[dict, bytes, bool]:
    """(the rotation's state, its new key, whether it resumes one that was started before)."""
    mode = _mode(root)
    state = rotation(root)
    if mode == ENV:
        new_key = os.environ[NEXT_KEY_ENV].encode("utf-8")
    elif next_key_file(root).exists():
        new_key = next_key_file(root).read_text().strip().encode("utf-8")
    elif state is not None and fingerprint(configured_key(root)) == state["new_fingerprint"]:
        new_key = configured_key(root)  # killed after the new key was moved into place: only finishing is left
    else:
        configured_key(root)  # the old key exists (a warehouse never loaded gets its first one here)
        write_secret(next_key_file(root), secrets.token_hex(32))
        new_key = next_key_file(root).read_text().strip().encode("utf-8")
    if state is not None:
        if state["mode"] != mode:
            raise RekeyRefused(f"rotation {state['run_id']} was started with the key held in the {state['mode']}, "
                               f"now it is held in the {mode}: run it as it was started ({rotation_file(root)})")
        if fingerprint(new_key) != state["new_fingerprint"]:
            where = NEXT_KEY_ENV if mode == ENV else next_key_file(root)
            raise RekeyRefused(f"rotation {state['run_id']} is re-keying to the key of fingerprint "
                               f"{state['new_fingerprint']}; {where} holds another: put that key back to complete it")
        out(f"resuming rotation {state['run_id']} (started {state['started_at']}): the warehouse is partly "
            f"re-keyed; loads are refused until it completes")
        return state, new_key, True
    now = datetime.now(timezone.utc)
    state = {"run_id": f"rekey__{now:%Y%m%dT%H%M%S%f}", "mode": mode, "started_at": now.isoformat(timespec="seconds"),
             "new_fingerprint": fingerprint(new_key), "old_fingerprint": fingerprint(configured_key(root))}
    rotation_file(root).parent.mkdir(parents=True, exist_ok=True)
    settings.write_atomic(rotation_file(root), json.dumps(state, indent=2))
    os.chmod(rotation_file(root), 0o600)
    out(f"rotation {state['run_id']} started: key {state['old_fingerprint']} → {state['new_fingerprint']}; "
        f"loads are refused until it completes")
    return state, new_key, False


@contextlib.contextmanager
def _key_in_environment(key: bytes):
    """This process's loads hash with the new key (as the DAGs hand a connection's key to load_files)."""
    before = os.environ.get(KEY_ENV)
    os.environ[KEY_ENV] = key.decode("utf-8")
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(KEY_ENV, None)
        else:
            os.environ[KEY_ENV] = before


def _reload(feed: str, labels: list[str], run_id: str, root: Path) -> int:
    missing = [label for label in labels if not (root / label).exists() and not (root / label).is_symlink()]
    if missing:
        raise RekeyRefused(f"{missing[0]}: the landed file is gone ({len(missing)} file(s) of {feed}), so its rows "
                           f"cannot be re-keyed (landing/ must keep every export): restore it from backup and run "
                           f"`qala rekey` again; the old key is kept until then")
    try:
        rows = load_files(feed, [root / label for label in labels], run_id=run_id, root=root)
    except LoadFailure as failure:  # blocked or failed again: the ledger says why; `verify` judges
        rows = failure.rows
    return sum(r.rows_in or 0 for r in rows)


def _dbt_built(con) -> bool:
    (n,) = con.execute(
        "select count(*) from information_schema.tables where table_catalog = ? "
        "and table_schema in ('staging', 'intermediate', 'marts')", [settings.LAKE_ALIAS]).fetchone()
    return n > 0


def rebuild_dbt(root: Path, tables: list[str]) -> None:
    """Every dbt model downstream of the re-keyed silver tables, rebuilt in full, with its tests;
    under the lake's writer lock, as build_kpis builds (a load whose commit fails deletes the data
    files no snapshot lists, which an unlocked build's uncommitted files would be)."""
    target = settings.state_dir(root) / "dbt" / "rekey"
    selection = [f"source:silver.{t}+" for t in tables]
    with lake.writer_lock(root):
        done = _dbt(selection, target, root)
    if done.returncode != 0:
        raise RekeyRefused(f"dbt build of the models derived from re-keyed silver failed (rotation left in progress; "
                           f"fix and run `qala rekey` again):\n{done.stdout[-4000:]}{done.stderr[-2000:]}")


def _dbt(selection: list[str], target: Path, root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "build", "--full-refresh", "--select", *selection,
         "--profiles-dir", ".", "--target-path", str(target / "target"), "--log-path", str(target / "logs")],
        cwd=settings.DBT_PROJECT_DIR, capture_output=True, text=True,
        env={**os.environ, "QALA_WAREHOUSE": str(root), "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"})


def _scrub_gate_results(con, run_id: str, root: Path) -> None:
    """Failed expectations keep up to 3 example values; on a hashed column those are HMACs under the
    old key, which this blanks in the hashed feeds' batches from before the rotation."""
    feeds = hashed_feeds()

    def statements() -> None:
        con.execute(f"""update ops.gate_results set observed = regexp_replace(observed, '{_HEX64}', '<hmac, retired key>', 'g')
                        where feed in (select unnest(?::varchar[])) and regexp_matches(observed, '{_HEX64}')
                        and batch_id not in (select batch_id from ops.load_ledger where run_id = ?)""", [feeds, run_id])

    lake.commit(con, statements, root)


def _expire_snapshots(con, root: Path) -> None:
    with lake.writer_lock(root):
        con.execute(f"call ducklake_expire_snapshots('{settings.LAKE_ALIAS}', older_than => now())")
        con.execute(f"call ducklake_cleanup_old_files('{settings.LAKE_ALIAS}', cleanup_all => true)")


def _finish(con, state: dict, new_key: bytes, root: Path) -> None:
    """Verify once more and put the new key in place, under the writer lock (no publish in between)."""
    with lake.writer_lock(root):
        stale = stale_files(con, state["run_id"])
        if stale:
            raise RekeyRefused(_stale_message(stale))
        if state["mode"] == FILE and next_key_file(root).exists():
            os.replace(next_key_file(root), key_file(root))  # the old key's file is gone with it
        pin = pin_file(root)
        with contextlib.suppress(FileNotFoundError):
            pin.unlink()
        write_secret(pin, fingerprint(new_key))
        rotation_file(root).unlink()


def _stale_message(stale: dict[str, list[str]]) -> str:
    lines = [f"rows still under the old key (rotation left in progress, the old key kept):"]
    lines += [f"  {table}: {', '.join(files[:5])}{' ...' if len(files) > 5 else ''}" for table, files in stale.items()]
    lines.append("  a file blocked or failed now that once published keeps its old rows in silver: fix it "
                 "(`qala replay`) or remove those rows, then run `qala rekey` again")
    return "\n".join(lines)


def rekey(root: Path | None = None, expire_snapshots: bool = False,
          out: Callable[[str], None] = print) -> Summary:
    """Rotate the key (see the module docstring); raises RekeyRefused, naming why and what to do."""
    root = root or settings.warehouse_root()
    began = time.monotonic()
    lake.ensure_lake(root)
    state, new_key, resumed = _start(root, out)
    run_id = state["run_id"]
    summary = Summary(run_id, state["mode"], resumed)
    con = lake.connect(root)
    try:
        with _key_in_environment(new_key):
            for feed in hashed_feeds():
                labels = files_to_rekey(con, feed, run_id)
                rows = _reload(feed, labels, run_id, root) if labels else 0
                summary.feeds[feed] = {"files": len(labels), "rows": rows}
                out(f"  {feed}: {len(labels)} file(s), {rows:,} rows re-keyed")
            for feed in hashed_feeds():
                # a load that published under the old key just before the rotation began, and
                # wrote its ledger row after the pass above had listed the feed's files
                labels = files_to_rekey(con, feed, run_id)
                if labels and any(l not in _failed(con, feed, run_id) for l in labels):
                    rows = _reload(feed, labels, run_id, root)
                    summary.feeds[feed]["files"] += len(labels)
                    summary.feeds[feed]["rows"] += rows
            stale = stale_files(con, run_id)
            if stale:
                raise RekeyRefused(_stale_message(stale))
            _scrub_gate_results(con, run_id, root)
            if _dbt_built(con):
                rebuild_dbt(root, hashed_tables())
                summary.dbt = "rebuilt (--full-refresh) every model downstream of the re-keyed silver tables"
            else:
                summary.dbt = "nothing built by dbt yet: the next build_kpis builds from re-keyed silver"
        _finish(con, state, new_key, root)
        if expire_snapshots:
            _expire_snapshots(con, root)
    finally:
        con.close()
    summary.done = True
    summary.seconds = time.monotonic() - began
    return summary
