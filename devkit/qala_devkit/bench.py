"""`make bench`: the simulator's speed per feed; Qala's ingest of a week of EVERY feed that has a
contract against DuckDB's own floor on the same landed files; and one large road-accident file.

Simulator: a week of every feed at two scales (S and 2S): records per second, and the bytes
written at 2S over the bytes at S (2.0 means size grows linearly with --scale; fixed-size
registers such as the programme plan stay at 1.0).

Ingest, per feed: the simulator writes the week from SIMULATOR_WEEK (no defects) at the feed's
bench scale (`ingest_scale`); then two child processes, one after the other, read exactly the
files a daily run would read in landing/ (`transforms.runs.batch_files`):

* the DuckDB floor: vectorised DuckDB only, reading the landed data and writing it as Parquet
  (`COPY ... TO`), the least any loader of that data must do. Per format: CSV → `read_csv` of
  all files, united by column name (a file that is not UTF-8 is first transcoded by Python's
  codec, as Qala's reader does), read both typed and as text, the faster counting
  (`duckdb_floor`); JSON Lines → `read_json(format='newline_delimited')`; FHIR Bulk → the
  manifests are parsed and each resource type's NDJSON files are read the same way; Open311 →
  `read_json(format='array')`; zips (GTFS, OneRoster) → members extracted with `zipfile`
  (timed), each member name's files read like CSV. GTFS-Realtime is protobuf: DuckDB has no
  reader for it, so there is no floor and no ratio.
* Qala: `load_files` on the same files in a fresh warehouse: read, row checks, pseudonymisation,
  the GX gate, publish in one DuckLake transaction per batch, ledger, Data Docs. The time of
  each stage is taken by wrapping the function that does it (`_instrument`); importing Great
  Expectations is paid once per load task and reported apart.

Each side runs in its own process, so its peak memory (VmHWM, `peak_rss_mb`) is its own.
"""

from __future__ import annotations

import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

BENCH_DAY = date(2025, 3, 3)
# Monday 31 March 2025 and its week: a OneRoster bulk, a monthly workforce report (1 April), the
# opening of first-grade applications, the heating season's last weeks.
SIMULATOR_WEEK = date(2025, 3, 31)
WEEK = 7

# A feed's ingest-bench scale is sim_scale × its factor, chosen so that at the default sim_scale
# (0.1) a week is a meaningful volume (about 30k to 500k records) while the whole bench stays
# near 15 minutes on 2 cores: the national feeds are cut, the small registers blown up (a week
# of road accidents at scale 1.0 is ~390 records). Records at sim_scale 0.1 in the comments.
INGEST_FACTOR = {
    "education/kindergarten_queue": 20,     # ~32k events (its simulator makes ~1.2k/s)
    "education/oneroster": 0.2,             # ~430k rows: Monday's bulk and six deltas
    "education/school_applications": 10,    # ~200k applications (the season opens 1 April)
    "health/fhir_bulk": 0.2,                # ~200k resources, ~190 MB of NDJSON
    "housing/open311_requests": 30,         # ~140k requests, ~100 MB
    "housing/street_lighting": 20,          # ~500k cabinet-hours
    "housing/utility_payments": 200,        # ~50k payments (its simulator makes ~3k/s)
    "programme/alatau_workforce": 200,      # ~250k staff in one monthly file
    "safety/camera_registry": 100,          # ~200k camera rows in 7 daily snapshots
    "safety/road_accidents": 5000,          # ~190k accidents
    "safety/sergek_violations": 50,         # ~400k camera events in 28 files
    "transport/fare_validations": 0.3,      # ~450k taps in 21 files
    "transport/gtfs_rt_trip_updates": 0.1,  # ~150k stop-time updates in 504 hourly files
    "transport/gtfs_static": 0.7,           # ~300k rows in 3 zips (the week's one build)
}
# The programme plan, the public-services register and the Alatau projects are fixed-size: any
# scale gives the same few thousand rows.
FIXED_SIZE = {"programme/events", "programme/public_services", "programme/alatau_projects"}
JSON_FORMATS = {"jsonl", "open311", "fhir_bulk"}
NO_FLOOR = {"gtfs_rt": "protobuf: DuckDB has no reader for it"}
WITHIN = 1.5  # "near the floor"


# --------------------------------------------------------------------------- child processes
def _sql_list(paths: list[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def _copy(con, source: str, target: Path) -> int:
    """DuckDB reads `source` and writes it as Parquet; returns the rows written."""
    (rows,) = con.execute(f"copy (select * from {source}) to '{target}' (format parquet)").fetchone()
    return int(rows)


def _utf8(paths: list[Path], encodings: list[str], work: Path) -> list[Path]:
    """The files as UTF-8: a file that does not decode as UTF-8 is transcoded from the contract's
    legacy encoding with Python's codec (what Qala's CSV reader does too)."""
    legacy = [e for e in encodings if e.lower() not in ("utf-8", "utf8")]
    if not legacy:
        return paths
    out = []
    for path in paths:
        data = path.read_bytes()
        try:
            data.decode("utf-8")
            out.append(path)
        except UnicodeDecodeError:
            target = work / f"utf8_{len(out)}_{path.name}"
            target.write_bytes(data.decode(legacy[0]).encode("utf-8"))
            out.append(target)
    return out


def _read_csvs(paths: list[Path], fmt: dict) -> str:
    """One `read_csv` over files that share a header line, their union by name when the
    headers differ. (`union_by_name = true` itself costs DuckDB 1.5 ~0.17 s per file: 24 s
    instead of 0.6 s on 140 small files of one header, far from a floor.) Fields typed by
    DuckDB's sniffer, or all text when `fmt["as_text"]`."""
    groups: dict[bytes, list[Path]] = {}
    for path in paths:
        with path.open("rb") as handle:
            groups.setdefault(handle.readline().rstrip(b"\r\n"), []).append(path)
    options = "delim = '" + fmt.get("delimiter", ",").replace("'", "''") + "'"
    options += ", all_varchar = true" if fmt.get("as_text") else ""
    scans = [f"select * from read_csv({_sql_list(files)}, {options})" for files in groups.values()]
    return "(" + " union all by name ".join(scans) + ")"


def _floor_csv(con, paths: list[Path], work: Path, fmt: dict) -> int:
    files = _utf8(paths, fmt.get("encodings", ["utf-8"]), work)
    return _copy(con, _read_csvs(files, fmt), work / "data.parquet")


def _floor_ndjson(con, paths: list[Path], work: Path, fmt: dict) -> int:
    return _copy(con, f"read_json({_sql_list(paths)}, format = 'newline_delimited')", work / "data.parquet")


def _floor_json_array(con, paths: list[Path], work: Path, fmt: dict) -> int:
    return _copy(con, f"read_json({_sql_list(paths)}, format = 'array')", work / "data.parquet")


def _floor_fhir(con, paths: list[Path], work: Path, fmt: dict) -> int:
    """Each manifest's output files (found beside it by the URL's last segment), read per
    resource type across the week."""
    from urllib.parse import unquote, urlsplit

    by_type: dict[str, list[Path]] = {}
    for manifest in paths:
        for item in json.loads(manifest.read_text(encoding="utf-8")).get("output", []):
            name = Path(unquote(urlsplit(item["url"]).path)).name
            ndjson = manifest.parent / name
            if not ndjson.exists():
                ndjson = ndjson.with_name(name + ".ndjson")
            if ndjson.stat().st_size:
                by_type.setdefault(item["type"], []).append(ndjson)
    rows = 0
    for kind, files in sorted(by_type.items()):
        (work / kind).mkdir()
        rows += _floor_ndjson(con, files, work / kind, fmt)
    return rows


def _floor_zip(con, paths: list[Path], work: Path, fmt: dict) -> int:
    """Every zip extracted (Python's zipfile, timed), then each member name's files of the week
    read by read_csv into one Parquet file."""
    members: dict[str, list[Path]] = {}
    for index, path in enumerate(paths):
        folder = work / f"zip{index}"
        with zipfile.ZipFile(path) as archive:
            archive.extractall(folder)
            for name in archive.namelist():
                if not name.endswith("/") and (folder / name).stat().st_size:
                    members.setdefault(name, []).append(folder / name)
    return sum(_copy(con, _read_csvs(files, {"as_text": fmt.get("as_text")}), work / f"{Path(name).stem}.parquet")
               for name, files in sorted(members.items()))


FLOORS: dict[str, Callable] = {"csv": _floor_csv, "jsonl": _floor_ndjson, "fhir_bulk": _floor_fhir,
                               "open311": _floor_json_array, "gtfs_static": _floor_zip, "oneroster": _floor_zip}


CSV_FLOORS = {"csv", "gtfs_static", "oneroster"}


def duckdb_floor(fmt: dict, files: list[str], out: str) -> dict:
    """Measured: from the list of landed files to the Parquet files written (empty files are
    passed over: they hold nothing to read). CSV is read twice, typed by DuckDB's sniffer and
    as text, and the faster counts: typed wins on a big file (smaller Parquet), text on many
    small ones (the sniffer re-sniffs each file whose types differ: 11 s instead of 1.4 s on
    140 files of 16k rows)."""
    import duckdb

    con = duckdb.connect()
    runs = []
    for as_text in (False, True) if fmt["type"] in CSV_FLOORS else (False,):
        work = Path(out) / ("text" if as_text else "typed")
        work.mkdir(parents=True)
        started = time.perf_counter()
        paths = [Path(f) for f in files if os.path.getsize(f)]
        rows = FLOORS[fmt["type"]](con, paths, work, {**fmt, "as_text": as_text})
        runs.append({"seconds": time.perf_counter() - started, "rows": rows, "as_text": as_text})
        shutil.rmtree(work)
    return min(runs, key=lambda run: run["seconds"])


# Stages of the load path and the function that does each (module, attribute). When they nest
# (the ledger commits through lake.commit), the outermost one takes the time.
STAGES = (("attach", "transforms.lake", "ensure_lake"), ("attach", "transforms.lake", "connect"),
          ("sha256", "transforms.load.read", "sha256"), ("read", "transforms.load.read", "read_file"),
          ("checks", "transforms.checks", "split"), ("pandas", "transforms.load.gating", "frame"),
          ("GX gate", "transforms.gate", "validate"), ("count", "transforms.load.check", "count"),
          ("history", "transforms.history", "profile"), ("history", "transforms.history", "check"),
          ("publish", "transforms.lake", "commit"), ("ledger", "transforms.ledger", "record"),
          ("docs", "transforms.gate", "build_data_docs"))
STAGE_NAMES = list(dict.fromkeys(name for name, _, _ in STAGES))


def _instrument() -> dict[str, float]:
    """Wrap each stage's function in this process; returns the seconds spent per stage."""
    spent = dict.fromkeys(STAGE_NAMES, 0.0)
    depth = [0]

    def wrap(stage: str, function: Callable) -> Callable:
        def timed(*args, **kwargs):
            depth[0] += 1
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    spent[stage] += time.perf_counter() - started
        return timed

    wrap_stages(wrap)
    return spent


def wrap_stages(wrap: Callable[[str, Callable], Callable]) -> None:
    """Replace, in this process, each stage's function (STAGES) by `wrap(stage, function)`."""
    import importlib

    for stage, module_name, attribute in STAGES:
        owner = importlib.import_module(module_name)
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        setattr(owner, name, wrap(stage, getattr(owner, name)))


def qala_ingest(feed: str, files: list[str], warehouse: str) -> dict:
    """Measured: `load_files` of the landed files into a fresh warehouse (lake created before the
    clock starts); Great Expectations' import apart."""
    os.environ["QALA_WAREHOUSE"] = warehouse
    started = time.perf_counter()
    import great_expectations  # noqa: F401 - paid once per load task; reported apart

    gx_import = time.perf_counter() - started
    from transforms import lake, load

    root = Path(warehouse)
    lake.ensure_lake(root)
    spent = _instrument()
    started = time.perf_counter()
    try:
        rows = load.load_files(feed, [Path(f) for f in files], run_id="bench", root=root)
    except load.LoadFailure as failure:
        rows = failure.rows
    seconds = time.perf_counter() - started
    failed = [r.reason for r in rows if r.status != "published"]
    return {"seconds": seconds, "gx_import_seconds": gx_import, "stages": spent,
            "rows_in": sum(r.rows_in for r in rows), "rows_published": sum(r.rows_published for r in rows),
            "rows_quarantined": sum(r.rows_quarantined for r in rows),
            "rows_skipped": sum(r.rows_skipped for r in rows),
            "status": dict(Counter(r.status for r in rows)), "first_failure": failed[0] if failed else None}


def peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM, which starts afresh at exec (Linux keeps
    ru_maxrss across fork and exec, so a child would report the bench's own peak)."""
    try:
        status = Path("/proc/self/status").read_text()
        return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(kind: str, spec: str) -> None:
    result = {"duckdb": duckdb_floor, "qala": qala_ingest}[kind](**json.loads(Path(spec).read_text()))
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


def _run(kind: str, spec: dict, scratch: Path, env: dict | None = None) -> dict:
    """One side in its own process; a side that fails gives {"error": its last stderr line}."""
    spec_path = scratch / f"{kind}_spec.json"
    spec_path.write_text(json.dumps(spec))
    out = subprocess.run([sys.executable, "-m", "qala_devkit.bench", kind, str(spec_path)],
                         capture_output=True, text=True, env={**os.environ, **(env or {})})
    if out.returncode:
        lines = out.stderr.strip().splitlines() or ["no output"]
        return {"error": f"exit {out.returncode}: {lines[-1][:200]}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- simulator section
def simulator_bench(scale: float, first: date = SIMULATOR_WEEK, days: int = WEEK) -> list[dict]:
    """Generate a week of every feed at `scale` and at 2 x `scale`, one process, one feed at a
    time: the time includes each feed's warm-up (earlier days re-derived for late records)."""
    from qala_devkit.simulate import feed_modules, simulate

    results = []
    with tempfile.TemporaryDirectory(prefix="qala-simbench-") as tmp:
        for feed in feed_modules():
            measured = {}
            for factor in (1, 2):
                root = Path(tmp) / f"{feed.replace('/', '_')}_{factor}"
                t = time.perf_counter()
                records = simulate(root, first, days, scale=scale * factor, seed=42, feeds=[feed],
                                   workers=1)[feed]  # fmt: skip
                seconds = time.perf_counter() - t
                size = sum(p.stat().st_size for p in (root / "landing").rglob("*") if p.is_file())
                measured[factor] = (records, seconds, size)
                shutil.rmtree(root)
            (r1, _, b1), (r2, s2, b2) = measured[1], measured[2]
            results.append({"feed": feed, "records": r2, "seconds": s2, "records_per_s": r2 / s2,
                            "mb": b2 / 1e6, "size_ratio": b2 / b1 if b1 else float("nan")})
    return results


def print_simulator(sim_scale: float) -> None:
    print(f"make bench — the simulator: the week from {SIMULATOR_WEEK} of each feed, one process, "
          f"at scale S = {sim_scale} and 2S (figures at 2S)")
    print(f"  {'feed':34} {'records':>10} {'seconds':>8} {'records/s':>11} {'MB':>8}  size 2S/S")
    for r in simulator_bench(sim_scale):
        print(f"  {r['feed']:34} {r['records']:>10,} {r['seconds']:>8.2f} {r['records_per_s']:>11,.0f} "
              f"{r['mb']:>8.1f}  {r['size_ratio']:.2f}", flush=True)


# --------------------------------------------------------------------------- per-feed ingest
def ingest_scale(feed: str, sim_scale: float) -> float:
    return sim_scale * INGEST_FACTOR.get(feed, 1)


def _data_bytes(fmt_type: str, files: list[Path]) -> int:
    """Bytes of the landed data: the files, and for FHIR the NDJSON files beside each manifest."""
    folders = {f.parent for f in files} if fmt_type == "fhir_bulk" else set()
    extra = sum(p.stat().st_size for d in folders for p in d.iterdir() if p.suffix == ".ndjson")
    return sum(f.stat().st_size for f in files) + extra


def feed_bench(feed: str, scale: float, scratch: Path) -> dict:
    """Simulate the week of `feed` at `scale`, then time the floor and Qala on its landed files."""
    from transforms.contract import load_contract
    from transforms.runs import batch_files
    from qala_devkit.simulate import simulate

    contract = load_contract(feed)
    warehouse = scratch / "warehouse"
    t = time.perf_counter()
    records = simulate(warehouse, SIMULATOR_WEEK, WEEK, scale=scale, seed=42, feeds=[feed], defect_rate=0)[feed]
    simulated = time.perf_counter() - t
    files = batch_files(feed, SIMULATOR_WEEK, SIMULATOR_WEEK + timedelta(days=WEEK - 1), warehouse)
    fmt_type = contract.format["type"]
    result = {"feed": feed, "scale": scale, "format": fmt_type, "files": len(files), "records": records,
              "simulated_seconds": simulated, "mb": _data_bytes(fmt_type, files) / 1e6}
    names = [str(f) for f in files]
    if fmt_type in FLOORS:
        result["floor"] = _run("duckdb", {"fmt": contract.format, "files": names, "out": str(scratch / "floor")}, scratch)
        shutil.rmtree(scratch / "floor", ignore_errors=True)
    else:
        result["floor"] = {"error": NO_FLOOR.get(fmt_type, f"no floor for format {fmt_type}")}
    result["qala"] = _run("qala", {"feed": feed, "files": names, "warehouse": str(warehouse)}, scratch,
                          env={"QALA_WAREHOUSE": str(warehouse)})
    return result


def ratio(r: dict) -> float | None:
    floor, qala = r["floor"], r["qala"]
    if "error" in floor or "error" in qala or not floor["seconds"]:
        return None
    return qala["seconds"] / floor["seconds"]


INGEST_HEADER = (f"  {'feed':31} {'scale':>6} {'files':>5} {'MB':>7} {'rows':>9} │ {'floor s':>7} {'RSS MB':>6} │ "
                 f"{'Qala s':>7} {'rows/s':>8} {'RSS MB':>6} {'GX':>4} {'GX s/M':>6} │ {'Qala/floor':>10}  outcome")


def format_ingest(r: dict) -> str:
    """One feed's line: data; the floor; Qala (rows/s over the records it took in, GX gate share);
    the ratio; the ledger outcome."""
    floor, qala = r["floor"], r["qala"]
    scale = "fixed" if r["feed"] in FIXED_SIZE else f"{r['scale']:g}"
    rows = qala.get("rows_in", 0) + qala.get("rows_skipped", 0) if "error" not in qala else r["records"]
    floor_part = (f"{'—':>7} {'—':>6}" if "error" in floor else f"{floor['seconds']:>7.2f} {floor['peak_rss_mb']:>6.0f}")
    if "error" in qala:
        qala_part, outcome = f"{'—':>7} {'—':>8} {'—':>6} {'—':>4} {'—':>6}", qala["error"]
    else:
        per_s = qala["rows_in"] / qala["seconds"] if qala["seconds"] else 0
        gate = qala["stages"]["GX gate"] / qala["seconds"] if qala["seconds"] else 0
        per_million = qala["stages"]["GX gate"] / qala["rows_in"] * 1e6 if qala["rows_in"] else 0
        qala_part = f"{qala['seconds']:>7.2f} {per_s:>8,.0f} {qala['peak_rss_mb']:>6.0f} {gate:>4.0%} {per_million:>6.1f}"
        outcome = ", ".join(f"{n} {s}" for s, n in sorted(qala["status"].items()))
        if qala.get("rows_skipped"):
            outcome += f"; {qala['rows_skipped']:,} skipped"
        if floor.get("as_text"):
            outcome += "; floor read as text"
    k = ratio(r)
    ratio_part = f"{k:>9.1f}×" if k is not None else f"{'n/a':>10}"
    return (f"  {r['feed']:31} {scale:>6} {r['files']:>5} {r['mb']:>7.1f} {rows:>9,} │ {floor_part} │ "
            f"{qala_part} │ {ratio_part}  {outcome}")


def format_stages(r: dict) -> str:
    """Where Qala's time went, per stage, as shares of its ingest time ('other': what no stage
    covers: the batch's temp tables, the split into batches, the HMAC key), and the GX import
    paid before it."""
    qala = r["qala"]
    if "error" in qala or not qala["seconds"]:
        return f"  {r['feed']:31} —"
    stages = qala["stages"]
    other = max(0.0, qala["seconds"] - sum(stages.values()))
    shares = " ".join(f"{v / qala['seconds']:>7.0%}" for v in [*stages.values(), other])
    return f"  {r['feed']:31} {shares} {qala['gx_import_seconds']:>10.1f} {gate_to_work(stages):>9.2f}"


def gate_to_work(stages: dict[str, float]) -> float:
    """The gate's cost (GX validation, the pandas frame it needs, its Data Docs) against the work it
    guards (reading and parsing, the row checks, publishing): the goal is at most 1."""
    work = stages.get("read", 0) + stages.get("checks", 0) + stages.get("publish", 0)
    gate = stages.get("GX gate", 0) + stages.get("pandas", 0) + stages.get("docs", 0)
    return gate / work if work else float("nan")


LEGEND = """  rows: records Qala's readers took in (plus records of kinds the contract skips); Qala s: load_files,
  importing GX excluded; rows/s: rows in per Qala s; GX: the GX gate's share of Qala s; GX s/M: GX
  validation seconds per million rows in; gate/work (below): GX + its pandas frame + Data Docs against
  read + row checks + publish, the goal being at most 1; RSS MB: peak
  memory of each side's own process. The floor per format: csv read_csv (typed or as text, the
  faster); jsonl, FHIR NDJSON read_json (newline_delimited); Open311 read_json (array); zips: zipfile
  extraction + read_csv per member."""


def print_ingest(results: list[dict]) -> None:
    print(LEGEND)
    print("\n  where Qala's time goes (share of its ingest time per stage; GX import s paid before it)")
    names = [*STAGE_NAMES, "other"]
    print(f"  {'feed':31} " + " ".join(f"{n:>7}" for n in names) + f" {'GX import':>10} {'gate/work':>9}")
    for r in results:
        print(format_stages(r))
    print_summary(results)


def print_summary(results: list[dict]) -> None:
    """Geometric-mean ratio of the CSV/JSON feeds (and of every feed with a floor), the feeds
    within WITHIN × of the floor, and the feeds without a ratio and why."""
    measured = [(r, ratio(r)) for r in results if ratio(r) is not None]

    def geomean(values: list[float]) -> str:
        return f"{math.exp(sum(map(math.log, values)) / len(values)):.1f}×" if values else "n/a"

    text = [k for r, k in measured if r["format"] == "csv" or r["format"] in JSON_FORMATS]
    print(f"\n  geometric mean Qala / floor: CSV and JSON feeds {geomean(text)} ({len(text)} feeds); "
          f"every feed with a floor {geomean([k for _, k in measured])} ({len(measured)} feeds)")
    near = [f"{r['feed']} ({k:.1f}×)" for r, k in measured if k <= WITHIN]
    print(f"  within {WITHIN}× of the floor: {', '.join(near) or 'none'}")
    for r in results:
        for side in ("floor", "qala"):
            if "error" in r[side]:
                print(f"  {r['feed']}: {'no ratio' if side == 'floor' else 'Qala failed'} — {r[side]['error']}")


def ingest_bench(sim_scale: float, feeds: list[str] | None = None) -> list[dict]:
    """Every feed with a contract (or `feeds`), one at a time; each line printed as it is done."""
    from transforms.contract import all_feeds

    feeds = feeds or all_feeds()
    print(f"\nmake bench — ingest per feed: the week from {SIMULATOR_WEEK} (no defects) at each feed's scale "
          f"(sim_scale × factor), DuckDB's floor (read → Parquet) vs Qala's load_files on the same landed files")
    print(INGEST_HEADER)
    results = []
    for feed in feeds:
        with tempfile.TemporaryDirectory(prefix="qala-bench-feed-") as tmp:
            result = feed_bench(feed, ingest_scale(feed, sim_scale), Path(tmp))
        print(format_ingest(result), flush=True)
        results.append(result)
    print_ingest(results)
    return results


# --------------------------------------------------------------------------- one big file
def big_file_bench(rows: int) -> None:
    """One road-accident CSV of `rows` rows: the floor and Qala, as README quotes it."""
    from transforms.contract import load_contract
    from qala_devkit.simulate.road_accidents import write_rows

    with tempfile.TemporaryDirectory(prefix="qala-bench-") as tmp:
        scratch = Path(tmp)
        warehouse = scratch / "warehouse"
        folder = warehouse / "landing" / "safety" / "road_accidents" / BENCH_DAY.isoformat()
        folder.mkdir(parents=True)
        csv_path = folder / "road_accidents_bench.csv"
        t = time.perf_counter()
        write_rows(csv_path, BENCH_DAY, rows)
        generated = time.perf_counter() - t
        size_mb = csv_path.stat().st_size / 1e6
        fmt = load_contract("safety/road_accidents").format
        floor = _run("duckdb", {"fmt": fmt, "files": [str(csv_path)], "out": str(scratch / "floor")}, scratch)
        qala = _run("qala", {"feed": "safety/road_accidents", "files": [str(csv_path)], "warehouse": str(warehouse)},
                    scratch, env={"QALA_WAREHOUSE": str(warehouse)})
    for side in (floor, qala):
        if "error" in side:
            print(f"\nmake bench — ingest of one road-accident file failed: {side['error']}")
            return
    k = qala["seconds"] / floor["seconds"]
    variant = "text" if floor.get("as_text") else "typed"
    print(f"""
make bench — ingest: safety/road_accidents, one file of {rows:,} rows ({size_mb:.0f} MB CSV), generated in {generated:.1f} s
  DuckDB floor (read_csv {variant:5} → Parquet): {floor['seconds']:6.2f} s   peak memory {floor['peak_rss_mb']:7.0f} MB
  Qala ingest (parse, checks, GX gate,    {qala['seconds']:7.2f} s   peak memory {qala['peak_rss_mb']:7.0f} MB
    publish in one DuckLake transaction)
  ratio Qala / DuckDB floor:              {k:7.2f} ×
  GX gate share of the ingest:            {qala['stages']['GX gate']:7.2f} s = {qala['stages']['GX gate'] / qala['seconds']:.0%}
  GX import, once per load task (apart):  {qala['gx_import_seconds']:7.2f} s
  rows: {qala['rows_in']:,} in, {qala['rows_published']:,} published ({', '.join(qala['status'])})
""")


# --- the dbt project: inside Airflow against plain, and a day's incremental build against a full one
DBT_BENCH_START = date(2024, 1, 1)
DBT_BENCH_DAYS = 31  # January loaded whole; the 32nd day is "the next day" of the incremental build
# As in the KPI tests' world: the small registers at full size, and open311 above the scales at
# which some days have no request (a contract refuses an empty export).
DBT_BENCH_FEED_SCALES = {"safety/road_accidents": 1.0, "housing/utility_payments": 1.0,
                         "housing/open311_requests": 0.005}
INCREMENTAL_MODEL = "model.qala.int_transport__gtfs_rt_trip_updates__region_month"


def _model_seconds(root: Path, unique_id: str = INCREMENTAL_MODEL) -> float:
    """The last dbt invocation's execution time of one node (run_results.json)."""
    results = json.loads((root / "dbt_target" / "run_results.json").read_text())["results"]
    return next(r["execution_time"] for r in results if r["unique_id"] == unique_id)


def _dbt_build(root: Path, *args: str) -> float:
    """`dbt build` of the project on root's lake, as build_kpis runs it: wall seconds."""
    from transforms import settings

    started = time.perf_counter()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "build", *args, "--quiet", "--profiles-dir", ".",
         "--target-path", str(root / "dbt_target"), "--log-path", str(root / "dbt_logs")],
        cwd=settings.DBT_PROJECT_DIR, capture_output=True, text=True,
        env={**os.environ, "QALA_WAREHOUSE": str(root), "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"})
    if done.returncode != 0:
        raise RuntimeError(f"dbt build {' '.join(args)} failed:\n{done.stdout[-4000:]}{done.stderr[-2000:]}")
    return time.perf_counter() - started


def _load_days(root: Path, first: date, last: date, feeds: list[str]) -> None:
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_load_feed_days, [(feed, str(root), first, last) for feed in feeds]))


def _load_feed_days(job: tuple[str, str, date, date]) -> None:
    from transforms import runs
    from transforms.load import load_files

    feed, root, first, last = job
    load_files(feed, runs.landed_files(feed, first, last, Path(root)), run_id=f"bench-{first}", root=Path(root))


def dbt_bench(scale: float) -> dict:
    """Every feed simulated for DBT_BENCH_DAYS + 1 days at `scale` and loaded for the first
    DBT_BENCH_DAYS; then, on that lake: a full `dbt build`; the build again with nothing new
    (plain); the build_kpis DAG in the embedded Airflow with nothing new (the same work as the
    plain build: the ratio is what Airflow and cosmos add); then the next day loaded and built
    incrementally, against a full refresh of the same lake."""
    from datetime import datetime

    from transforms import lake
    from transforms.airflow_api import run_id
    from transforms.orchestrate import EmbeddedAirflow
    from qala_devkit.simulate import feed_modules, simulate

    feeds = sorted(feed_modules())
    last = DBT_BENCH_START + timedelta(days=DBT_BENCH_DAYS - 1)
    next_day = last + timedelta(days=1)
    with tempfile.TemporaryDirectory(prefix="qala-dbt-bench-") as scratch:
        root = Path(scratch) / "warehouse"
        root.mkdir()
        before = os.environ.get("QALA_WAREHOUSE")
        os.environ["QALA_WAREHOUSE"] = str(root)
        try:
            simulate(root, start=DBT_BENCH_START, days=DBT_BENCH_DAYS + 1, scale=scale, seed=11,
                     defect_rate=0.0, scales=DBT_BENCH_FEED_SCALES, workers=2)
            lake.ensure_lake(root)
            _load_days(root, DBT_BENCH_START, last, feeds)
            first_build = _dbt_build(root)
            plain = _dbt_build(root)
            with EmbeddedAirflow(root) as airflow:
                airflow.wait_for_dags(["build_kpis"])
                # the runs a new Airflow creates at start-up (today's, with nothing landed) first
                airflow.wait_for_scheduled_runs(airflow.dag_ids())
                rid = airflow.trigger("build_kpis", {}, run_id("bench__build_kpis"))
                state = airflow.wait_for_run("build_kpis", rid)
                run = airflow.dag_run("build_kpis", rid)
            if state != "success":
                raise RuntimeError(f"build_kpis run {rid} ended {state}: see {root / 'state' / 'airflow' / 'logs'}")
            in_airflow = (datetime.fromisoformat(run["end_date"]) - datetime.fromisoformat(run["start_date"])).total_seconds()
            build_task = next(t for t in run["tasks"] if t["task_id"] == "dbt_build")
            _load_days(root, next_day, next_day, feeds)
            incremental = _dbt_build(root)
            incremental_model = _model_seconds(root)
            full = _dbt_build(root, "--full-refresh")
            full_model = _model_seconds(root)
        finally:
            if before is None:
                os.environ.pop("QALA_WAREHOUSE", None)
            else:
                os.environ["QALA_WAREHOUSE"] = before
    return {"scale": scale, "days": DBT_BENCH_DAYS, "first_build_s": first_build, "plain_s": plain,
            "airflow_s": in_airflow, "airflow_build_s": build_task["duration"],
            "incremental_s": incremental, "full_s": full,
            "incremental_model_s": incremental_model, "full_model_s": full_model}


def print_dbt(r: dict) -> None:
    print(f"\n== dbt: the KPI project on {r['days']} simulated days of every feed (SCALE {r['scale']}) ==")
    print(f"first dbt build (empty tables):        {r['first_build_s']:7.1f} s")
    print(f"plain dbt build (nothing new):         {r['plain_s']:7.1f} s")
    print(f"build_kpis's dbt_build task (same):    {r['airflow_build_s']:7.1f} s"
          f"  -> {r['airflow_build_s'] / r['plain_s']:.2f}x the plain build (goal: at most 1.2x)")
    print(f"  the whole build_kpis run:            {r['airflow_s']:7.1f} s"
          f"  -> {r['airflow_s'] / r['plain_s']:.2f}x (with Airflow's scheduling and write_scorecard)")
    print(f"next day, incremental dbt build:       {r['incremental_s']:7.1f} s"
          f"  -> {r['incremental_s'] / r['full_s']:.0%} of a full build")
    print(f"full dbt build (--full-refresh):       {r['full_s']:7.1f} s")
    print(f"  of which {INCREMENTAL_MODEL.split('.')[-1]}: incremental {r['incremental_model_s']:.1f} s,"
          f" full {r['full_model_s']:.1f} s ({r['incremental_model_s'] / r['full_model_s']:.0%}); the rest of a"
          f" build is the ~380 tests and the small table models, which every build runs whole")


def main(rows: int = 2_000_000, sim_scale: float = 0.1, feeds: list[str] | None = None,
         simulator: bool = True, dbt_scale: float | None = 0.002) -> int:
    """`qala bench`: the simulator section, the per-feed ingest section (`feeds`: all with a
    contract), the one big road-accident file, then the dbt section (`dbt_scale`; 0 skips it)."""
    started = time.perf_counter()
    if simulator:
        print_simulator(sim_scale)
    ingest_bench(sim_scale, feeds)
    big_file_bench(rows)
    if dbt_scale:
        print_dbt(dbt_bench(dbt_scale))
    print(f"make bench took {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2])
