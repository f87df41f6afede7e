"""`make chaos`: Qala killed with SIGKILL at random instants, then the same work run again to
completion, must end exactly where an undisturbed run ends.

A small simulated world of five feeds of different formats (CSV, JSON array, JSON Lines, FHIR
Bulk NDJSON, a OneRoster zip) is loaded and built once; from that state each trial takes one
unit of work, starts it in a child process, kills the child's whole process group with SIGKILL
after a random share of the unit's undisturbed time, then runs the same unit again in a fresh
process, as Airflow's retry would, and compares the warehouse with the undisturbed run's:

* `load:<feed>`: `load_files` of the feed's last two landing days (one already published, so
  its rows are replaced; one new), through read, row checks, pseudonymisation, the GX gate,
  the publish transaction, the ledger and the Data Docs;
* `replay:<feed>`: `replay` of the batch of the last-but-one day;
* `dbt`: the KPI project's `dbt build` (incremental models included) after a new day;
* `scorecard`: `scorecard.write`: the page, and its PDF when Chromium is installed.

Compared (each table as a multiset of rows, by count and a sum of row hashes): every silver and
quarantine table; ops.file_profiles; the latest ledger row of every landed file (status, rows
in / published / quarantined / skipped, reason); every table dbt builds (staging, intermediate,
marts); the scorecard page without its "built at" line, and that a PDF is whole. What a run
names afresh each time is left out: batch ids, snapshot ids, run ids, times, Data Docs paths.
Before the trials, each unit is run twice undisturbed: the two must agree, so the comparison
is shown to be exact and not vacuous.

The parent imports the load path and Great Expectations once and forks each child (no DuckDB
connection is open in the parent when it forks: every query runs in a child), so a trial costs
the work, not the imports. The stage a child was in when it died (read, checks, GX gate,
publish, ledger, docs ... as `make bench` names them) is kept in shared memory.

Written by hand: no chaos library for Python kills a process at an arbitrary instant and
compares lakehouse state; the kill, the fork and the comparison are each a few lines.
"""

from __future__ import annotations

import json
import mmap
import os
import random
import re
import shutil
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

# One feed per format (issue 20: at least four formats), small scales: a trial is seconds.
FEEDS = {
    "safety/road_accidents": 0.3,       # CSV
    "housing/open311_requests": 0.002,  # JSON array (Open311 GeoReport v2)
    "safety/sergek_violations": 0.002,  # JSON Lines
    "health/fhir_bulk": 0.002,          # FHIR Bulk Data: manifest + NDJSON
    "education/oneroster": 0.002,       # OneRoster 1.2 CSV bulk/delta zip
}
START = date(2025, 3, 1)  # Saturday; Monday 3 March brings the OneRoster bulk
DAYS = 4                  # days 1-3 are the state every trial starts from; day 4 is new
KEY = "chaos-" + "5" * 32  # one pseudonymisation key for every run (the comparison needs it)

# Columns a run names afresh each time: not part of what a run must reproduce.
VOLATILE = {"_batch_id", "batch_id", "snapshot_id", "run_id", "started_at", "finished_at", "checked_at",
            "data_docs"}
LEDGER_OUTCOME = ["feed", "source_file", "status", "rows_in", "rows_published", "rows_quarantined",
                  "rows_skipped", "reason", "sha256", "bytes"]
# The page's times ("built 2026-12-04 16:11 UTC" in three languages, and its snapshot's): a re-run
# a minute later writes another; the snapshot's id stays and is compared.
BUILT_AT = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} [A-Z][A-Za-z0-9+:-]{1,7}")


# --------------------------------------------------------------------------- the child side
def _run_in_child(work: Callable[[], object], marker: mmap.mmap | None = None) -> int:
    """Fork; the child runs `work` in a process group of its own and exits 0 (or 1 with its error
    on stderr). Returns the child's pid."""
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            os.setpgid(0, 0)
            if marker is not None:
                _mark_stages(marker)
            work()
            code = 0
        except BaseException as error:  # noqa: BLE001 - reported by exit code, the parent decides
            os.write(2, f"chaos child: {type(error).__name__}: {error}\n".encode()[:4000])
        finally:
            os._exit(code)
    try:
        os.setpgid(pid, pid)  # also here: the parent may kill before the child has run setpgid
    except (PermissionError, ProcessLookupError):
        pass
    return pid


def _wait(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _in_child(work: Callable[[], object]) -> object:
    """Run `work` in a forked child and return its JSON result (DuckDB stays out of the parent)."""
    read_end, write_end = os.pipe()

    def child() -> None:
        os.close(read_end)
        with os.fdopen(write_end, "w") as out:
            json.dump(work(), out, default=str)

    pid = _run_in_child(child)
    os.close(write_end)
    with os.fdopen(read_end) as result:
        text = result.read()
    if _wait(pid) != 0:
        raise RuntimeError("a chaos helper process failed (its error is above)")
    return json.loads(text)


def _mark_stages(marker: mmap.mmap) -> None:
    """Wrap each load-path stage's function (as `make bench` times them) so the stage running is
    written into `marker`; where stages nest (the ledger commits through lake.commit), the
    outermost one is the stage, as in `make bench`."""
    from qala_devkit.bench import wrap_stages

    depth = [0]

    def wrap(stage: str, function: Callable) -> Callable:
        def marked(*args, **kwargs):
            depth[0] += 1
            if depth[0] == 1:
                before = _stage(marker)
                _set_stage(marker, stage)
            try:
                return function(*args, **kwargs)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    _set_stage(marker, before)
        return marked

    wrap_stages(wrap)


def _set_stage(marker: mmap.mmap, stage: str) -> None:
    marker[:64] = stage.encode()[:64].ljust(64, b"\x00")


def _stage(marker: mmap.mmap) -> str:
    return bytes(marker[:64]).rstrip(b"\x00").decode()


# --------------------------------------------------------------------------- the units of work
@dataclass
class Unit:
    name: str
    work: Callable[[Path], None]   # runs in the child, on the trial's warehouse
    start: str                     # the prepared state it starts from
    seconds: float = 0.0           # its undisturbed time (measured)
    stages: dict = field(default_factory=dict)  # seconds per load-path stage, undisturbed
    reference: dict = field(default_factory=dict)


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _load(feed: str, first: date, last: date) -> Callable[[Path], None]:
    def work(root: Path) -> None:
        from transforms import runs
        from transforms.load import LoadFailure, load_files

        try:
            load_files(feed, runs.landed_files(feed, first, last, root), run_id=f"chaos-{feed}-{first}", root=root)
        except LoadFailure:
            pass  # a file the gate refuses is an outcome, in the ledger like any other
    return work


def _replay(feed: str, day: date) -> Callable[[Path], None]:
    def work(root: Path) -> None:
        from transforms import lake, replay

        con = lake.connect(root, read_only=True)
        try:
            (batch_id,) = con.execute(
                "select batch_id from ops.load_ledger where feed = ? and logical_date = ? and status = 'published' "
                "order by finished_at limit 1", [feed, day]).fetchone()
        finally:
            con.close()
        replay.replay(feed, batch_id, root)
    return work


def _dbt(root: Path) -> None:
    from qala_devkit.bench import _dbt_build

    _dbt_build(root)


def _scorecard(root: Path) -> None:
    from transforms import scorecard

    scorecard.write(root)


def _load_all(first: date, last: date) -> Callable[[Path], None]:
    def work(root: Path) -> None:
        for feed in FEEDS:
            _load(feed, first, last)(root)
    return work


def units() -> list[Unit]:
    last, before = START + timedelta(days=DAYS - 1), START + timedelta(days=DAYS - 2)
    made = [Unit(f"load:{feed}", _load(feed, before, last), "loaded") for feed in FEEDS]
    made += [Unit(f"replay:{feed}", _replay(feed, before), "loaded") for feed in FEEDS]
    made += [Unit("dbt", _dbt, "next_day"), Unit("scorecard", _scorecard, "built")]
    return made


# Trials per unit kind, as shares of the campaign: loads are where most can go wrong.
# A dbt build is ~20x a load here, so its share of trials is small and its share of time large.
WEIGHTS = {"load": 0.62, "replay": 0.22, "dbt": 0.09, "scorecard": 0.07}


# --------------------------------------------------------------------------- the comparison
def fingerprint(root: Path) -> dict[str, list]:
    """Every table that a run must reproduce, as [rows, sum of row hashes]; the ledger as each
    landed file's latest outcome; the scorecard page without its time; whether the PDF is whole."""
    from transforms import lake

    con = lake.connect(root, read_only=True)
    out: dict[str, list] = {}
    try:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables where table_catalog = 'qala' "
            "and table_schema in ('silver', 'quarantine', 'ops', 'staging', 'intermediate', 'marts') "
            "and table_type = 'BASE TABLE' order by all").fetchall()
        for schema_name, table in tables:
            if (schema_name, table) in (("ops", "load_ledger"), ("ops", "gate_results")):
                continue  # attempts are appended; the ledger's outcome per file is compared below
            columns = [c for (c,) in con.execute(
                "select column_name from information_schema.columns where table_catalog = 'qala' "
                "and table_schema = ? and table_name = ? order by ordinal_position", [schema_name, table]).fetchall()
                if c not in VOLATILE]
            out[f"{schema_name}.{table}"] = _multiset(con, f"select {', '.join(map(_q, columns))} "
                                                           f"from {schema_name}.{_q(table)}", columns)
        out["ops.load_ledger (latest per file)"] = _multiset(con, f"""
            select {', '.join(LEDGER_OUTCOME)} from ops.load_ledger
            qualify row_number() over (partition by source_file order by finished_at desc) = 1""", LEDGER_OUTCOME)
    finally:
        con.close()
    page = root / "reports" / "scorecard.html"
    if page.exists():
        import hashlib

        out["reports/scorecard.html"] = [hashlib.sha256(BUILT_AT.sub("", page.read_text()).encode()).hexdigest()]
    pdf = root / "reports" / "scorecard.pdf"
    if pdf.exists():
        data = pdf.read_bytes()
        out["reports/scorecard.pdf"] = [data.startswith(b"%PDF") and b"%%EOF" in data[-1024:]]
    return out


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _multiset(con, sql: str, columns: list[str]) -> list:
    hashed = f"hash({', '.join(map(_q, columns))})" if columns else "0"
    count, total = con.execute(f"select count(*), coalesce(sum({hashed}::hugeint), 0)::varchar from ({sql})").fetchone()
    return [count, total]


def differences(got: dict, expected: dict) -> list[str]:
    return [f"{name}: {got.get(name)} != {expected.get(name)}" for name in sorted(set(got) | set(expected))
            if got.get(name) != expected.get(name)]


# --------------------------------------------------------------------------- warehouses
def clone(source: Path, target: Path) -> Path:
    """A warehouse to try on: landing and the lake's Parquet files (never changed once written)
    hard-linked, the catalog and everything else copied."""
    def copy(src, dst, *, follow_symlinks=True):
        if "/landing/" in src or "/lake/data/" in src:
            try:
                return os.link(src, dst)
            except OSError:
                pass
        return shutil.copy2(src, dst, follow_symlinks=follow_symlinks)

    shutil.copytree(source, target, copy_function=copy, symlinks=True)
    return target


def prepare(scratch: Path, seed: int, needed: set[str]) -> dict[str, Path]:
    """The world and the states the units start from: `loaded` (days 1-3 loaded, and their KPIs
    built when a later state is needed), `next_day` (+ day 4 loaded), `built` (+ its KPIs
    built). Each is made in the one working warehouse (the catalog keeps its data path, so a
    state is only ever used at that path) and kept aside as a copy."""
    from qala_devkit.simulate import simulate

    root = scratch / "warehouse"
    root.mkdir(parents=True)
    simulate(root, start=START, days=DAYS, scale=0.002, seed=seed, defect_rate=0.02, feeds=list(FEEDS),
             scales=FEEDS, workers=2)
    last = START + timedelta(days=DAYS - 1)
    later = bool(needed & {"next_day", "built"})
    states = {}
    _must(_load_all(START, last - timedelta(days=1)), root)
    if later:
        _must(_dbt, root)
    states["loaded"] = clone(root, scratch / "states" / "loaded")
    if later:
        _must(_load_all(last, last), root)
        states["next_day"] = clone(root, scratch / "states" / "next_day")
    if "built" in needed:
        _must(_dbt, root)
        states["built"] = clone(root, scratch / "states" / "built")
    shutil.rmtree(root)
    return states


def restore(state: Path, scratch: Path) -> Path:
    """The working warehouse, as `state` was."""
    root = scratch / "warehouse"
    if root.exists():
        shutil.rmtree(root)
    return clone(state, root)


def _must(work: Callable[[Path], None], root: Path) -> None:
    pid = _run_in_child(lambda: work(root))
    if _wait(pid) != 0:
        raise RuntimeError(f"preparing {root.name} failed (its error is above)")


def _observed(work: Callable[[Path], None], root: Path, marker: mmap.mmap) -> tuple[float, dict[str, float]]:
    """The work undisturbed: its seconds, and the seconds spent in each stage (the marker sampled)."""
    _set_stage(marker, "before the first stage")
    started = last = time.perf_counter()
    pid = _run_in_child(lambda: work(root), marker)
    stages: Counter = Counter()
    while _still_running(pid):
        time.sleep(0.002)
        now = time.perf_counter()
        stages[_stage(marker)] += now - last
        last = now
    if _wait(pid) != 0:
        raise RuntimeError(f"{work} failed undisturbed (its error is above)")
    return time.perf_counter() - started, dict(stages)


def _enter(marker: mmap.mmap, stage: str, pid: int, seconds: float) -> bool:
    """Wait until the child is in `stage` (False if it ended first or never got there)."""
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline and _still_running(pid):
        if _stage(marker) == stage:
            return True
        time.sleep(0.0005)
    return False


# --------------------------------------------------------------------------- the campaign
@dataclass
class Report:
    trials: int = 0
    mid_work: int = 0                    # the child was still working when it was killed
    by_unit: Counter = field(default_factory=Counter)
    by_stage: Counter = field(default_factory=Counter)
    differences: list[str] = field(default_factory=list)
    reference_checks: list[str] = field(default_factory=list)
    seconds: float = 0.0


def campaign(trials: int, scratch: Path, seed: int = 7, kinds: list[str] | None = None,
             log: Callable[[str], None] = print, airflow_trials: int = 0) -> Report:
    os.environ["QALA_PSEUDONYMISATION_KEY"] = KEY
    os.environ.setdefault("QALA_DUCKDB_THREADS", "1")
    os.environ["QALA_WAREHOUSE"] = str(scratch / "warehouse")  # every unit works there
    # Imported once here: every child forks with them (no thread, no DuckDB connection is open).
    import great_expectations  # noqa: F401
    import qala_devkit.bench  # noqa: F401
    import transforms.load  # noqa: F401
    import transforms.replay  # noqa: F401
    import transforms.runs  # noqa: F401
    import transforms.scorecard  # noqa: F401

    started = time.perf_counter()
    report = Report()
    chosen = [u for u in units() if kinds is None or u.name.partition(":")[0] in kinds]
    states = prepare(scratch, seed, {u.start for u in chosen} | ({"loaded"} if airflow_trials else set()))
    starting = {name: _in_child(lambda root=restore(state, scratch): fingerprint(root))
                for name, state in states.items()}

    marker = mmap.mmap(-1, 64)

    def reference(unit: Unit) -> dict:
        """The unit undisturbed, twice (on first use): the reference, and proof that it is reproducible."""
        if not unit.reference:
            runs, times = [], []
            for _ in (1, 2):
                root = restore(states[unit.start], scratch)
                times.append(_observed(unit.work, root, marker))
                runs.append(_in_child(lambda root=root: fingerprint(root)))
            unit.seconds, unit.stages = min(times, key=lambda t: t[0])
            unit.reference = runs[0]
            if not unit.name.startswith("replay") and unit.reference == starting[unit.start]:
                report.reference_checks.append(f"{unit.name}: the undisturbed run changed nothing that is compared")
            report.reference_checks += [f"{unit.name} (undisturbed twice): {d}" for d in differences(runs[1], runs[0])]
            log(f"{unit.name}: {unit.seconds:.1f} s undisturbed, {len(unit.reference)} tables compared")
        return unit.reference

    rng = random.Random(seed)
    kinds_of = {k: [u for u in chosen if u.name.partition(":")[0] == k] for k in WEIGHTS}
    weights = {k: w for k, w in WEIGHTS.items() if kinds_of[k]}
    for trial in range(trials):
        kind = rng.choices(list(weights), list(weights.values()))[0]
        unit = rng.choice(kinds_of[kind])
        expected = reference(unit)
        root = restore(states[unit.start], scratch)
        # Half the load and replay trials aim at a stage (each alike, so the short ones, publish
        # and ledger, are hit too): killed a random share of its undisturbed time after the child
        # enters it; the rest, and every dbt and scorecard trial, at a random share of the whole.
        stages = sorted(name for name, spent in unit.stages.items() if spent > 0.001 and name != "before the first stage")
        target = rng.choice(stages) if kind in ("load", "replay") and stages and rng.random() < 0.5 else None
        _set_stage(marker, "before the first stage")
        began = time.perf_counter()
        pid = _run_in_child(lambda: unit.work(root), marker)
        if target is None:
            time.sleep(rng.uniform(0.0, 1.0) * unit.seconds)
        elif _enter(marker, target, pid, 10 * unit.seconds + 30):
            time.sleep(rng.uniform(0.0, 1.0) * unit.stages[target])
        after = time.perf_counter() - began
        stage = (_stage(marker) or "between stages") if kind in ("load", "replay") else kind
        alive = _still_running(pid)
        if alive:
            os.killpg(pid, signal.SIGKILL)
        code = _wait(pid)
        killed = alive and code == -signal.SIGKILL
        report.trials += 1
        report.by_unit[unit.name] += 1
        if killed:
            report.mid_work += 1
            report.by_stage[f"{kind}: {stage}" if stage != kind else kind] += 1
        try:
            _must(unit.work, root)  # the same work again, to completion
            found = differences(_in_child(lambda: fingerprint(root)), expected)
        except RuntimeError as error:
            found = [f"the re-run failed: {error}"]
        for line in found:
            report.differences.append(f"trial {trial + 1} {unit.name}, killed after {after:.2f} s "
                                      f"({stage if killed else 'after it ended'}): {line}")
        log(f"trial {trial + 1}/{trials} {unit.name}: " + (f"killed after {after:.2f} s in {stage}" if killed
            else "ended before the kill") + (f"; {len(found)} difference(s)" if found else "; same"))
        if found:  # kept as it ended (its catalog names the working path: attach it there)
            shutil.move(root, scratch / f"different-{trial + 1}")
    if airflow_trials:
        airflow_campaign(airflow_trials, states["loaded"], scratch, rng, report, log)
    report.seconds = time.perf_counter() - started
    return report


# --------------------------------------------------------------------------- Airflow task processes
AIRFLOW_DOMAINS = sorted({feed.partition("/")[0] for feed in FEEDS})


def airflow_campaign(trials: int, state: Path, scratch: Path, rng: random.Random, report: Report,
                     log: Callable[[str], None] = print) -> None:
    """The embedded Airflow on the `loaded` state: each trial triggers one domain's ingest DAG over
    the last two landing days, SIGKILLs the process of one of its running `load` task instances
    (the pid Airflow records for it) after a random share of its undisturbed time, and lets
    Airflow retry the task (retries=2); the run must succeed and the lake end as the undisturbed
    run of the same DAG left it."""
    import socket

    from transforms.airflow_api import run_id
    from transforms.orchestrate import EmbeddedAirflow

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        os.environ["QALA_AIRFLOW_PORT"] = str(probe.getsockname()[1])
    root = restore(state, scratch)
    last = START + timedelta(days=DAYS - 1)
    conf = {"landing_from": (last - timedelta(days=1)).isoformat(), "landing_to": last.isoformat(), "announce": False}
    references: dict[str, dict] = {}
    seconds: dict[str, float] = {}
    with EmbeddedAirflow(root) as airflow:
        dags = [f"ingest_{domain}" for domain in AIRFLOW_DOMAINS]
        airflow.wait_for_dags(dags)
        airflow.wait_for_scheduled_runs(dags)
        for trial in range(trials):
            domain = rng.choice(AIRFLOW_DOMAINS)
            dag_id = f"ingest_{domain}"
            if domain not in references:
                _reset_lake(state, root)
                rid = airflow.trigger(dag_id, conf, run_id(f"chaos_reference_{domain}"))
                if (ended := airflow.wait_for_run(dag_id, rid)) != "success":
                    report.reference_checks.append(f"{dag_id} undisturbed: run {rid} ended {ended}")
                loads = [t for t in airflow.dag_run(dag_id, rid)["tasks"] if t["task_id"].endswith(".load")]
                seconds[domain] = max(t["duration"] or 0.0 for t in loads)
                references[domain] = _in_child(lambda: fingerprint(root))
                log(f"{dag_id}: load tasks {seconds[domain]:.1f} s undisturbed")
            _reset_lake(state, root)
            rid = airflow.trigger(dag_id, conf, run_id(f"chaos_{trial + 1}"))
            pid = _running_load(airflow, dag_id, rid)
            after = rng.uniform(0.0, 1.0) * seconds[domain]
            time.sleep(after)
            try:
                os.kill(pid, signal.SIGKILL)
                killed = True
            except ProcessLookupError:
                killed = False
            ended = airflow.wait_for_run(dag_id, rid)
            tries = max(t["try_number"] for t in airflow.dag_run(dag_id, rid)["tasks"]
                        if t["task_id"].endswith(".load"))
            found = [f"run {rid} ended {ended}"] if ended != "success" else []
            found += differences(_in_child(lambda: fingerprint(root)), references[domain])
            report.trials += 1
            report.by_unit[f"airflow:{dag_id}"] += 1
            if killed and tries > 1:
                report.mid_work += 1
                report.by_stage["airflow: load task process"] += 1
            report.differences += [f"airflow trial {trial + 1} {dag_id}, task process killed after {after:.2f} s: "
                                   f"{line}" for line in found]
            log(f"airflow trial {trial + 1}/{trials} {dag_id}: " + (
                f"load task process {pid} killed after {after:.2f} s, {tries} tries" if killed
                else "the task had ended before the kill") + (f"; {len(found)} difference(s)" if found else "; same"))


def _reset_lake(state: Path, root: Path) -> None:
    """The lake and reports back as in `state`; landing and Airflow's own state stay."""
    for part in ("lake", "reports"):
        if (root / part).exists():
            shutil.rmtree(root / part)
        if (state / part).exists():
            clone(state / part, root / part)


def _running_load(airflow, dag_id: str, rid: str, seconds: float = 600) -> int:
    """The pid of the first `load` task instance of the run seen running."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for task in airflow.dag_run(dag_id, rid)["tasks"]:
            if task["task_id"].endswith(".load") and task["state"] == "running" and task.get("pid"):
                return task["pid"]
        time.sleep(0.2)
    raise TimeoutError(f"no load task of {dag_id} run {rid} was seen running within {seconds:.0f} s")


def _still_running(pid: int) -> bool:
    """Whether the child has not exited yet (looked at without reaping it)."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None


def print_report(report: Report) -> None:
    print(f"\n== chaos: {report.trials} trials, {report.mid_work} killed mid-work, "
          f"{len(report.differences)} difference(s), {report.seconds / 60:.1f} min ==")
    print("trials per unit:   " + ", ".join(f"{name} {n}" for name, n in sorted(report.by_unit.items())))
    print("where kills landed: " + ", ".join(f"{stage} {n}" for stage, n in sorted(report.by_stage.items())))
    for line in report.reference_checks:
        print(f"  ✗ reference not reproducible: {line}")
    for line in report.differences:
        print(f"  ✗ {line}")


def main(trials: int = 200, seed: int = 7, kinds: list[str] | None = None, keep: Path | None = None,
         airflow_trials: int = 8) -> int:
    """`qala chaos`: the campaign in a scratch folder; warehouses that differ kept in `keep`."""
    scratch = Path(tempfile.mkdtemp(prefix="qala-chaos-"))
    try:
        report = campaign(trials, scratch, seed=seed, kinds=kinds, airflow_trials=airflow_trials)
        if keep is not None:
            for kept in scratch.glob("different-*"):
                keep.mkdir(parents=True, exist_ok=True)
                shutil.move(kept, keep / kept.name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print_report(report)
    return 1 if report.differences or report.reference_checks else 0
