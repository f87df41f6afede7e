"""`make fuzz`: every reader fuzzed through the one load path, property-based (hypothesis).

For each format, one feed, seeded with real files of its standard: a day of the simulator's
world, this repository's fixtures (`tests/fixtures/`) and, where present, the public example
files of `../shared/conformance/`. Hypothesis draws a seed and one to three mutations of it:
byte flips, a cut at any byte, a line duplicated or deleted, a huge field or line, deep JSON
nesting, another encoding (UTF-16, Windows-1251), NUL bytes; for zips, a member mutated and
zipped again, a member named `../` or absolutely, a member named twice, a bomb by ratio or by
member count; in the landing folder, a symbolic link out of it or a named pipe. Each input lands
in a landing day folder of its own in a scratch warehouse; `inputs_per_example` inputs are loaded
together by `load_files`, as a history run loads them.

The property, for every input: its landed files all have a ledger row (runs.unaccounted is
empty); each row balances (rows_in = published + quarantined); a `failed` row's reason names a
landed file (its own, or for a FHIR manifest the file of its export at fault); nothing is written outside the warehouse (every scratch file goes under it through TMPDIR,
and a canary folder beside it must stay empty); no uncaught exception; no load past
`seconds_per_input` per input (SIGALRM); no process past `memory_gb` (RLIMIT_AS: a MemoryError
is a finding). A failing load is bisected to the input that breaks it; each finding is kept
with its input under `<warehouse>/reports/fuzz/<format>/`, to become a regression test.

Written by hand around hypothesis (not atheris): the inputs are whole files and folders loaded
through DuckDB, GX and the lake, where coverage-guided byte fuzzing of one Python function would
not reach; hypothesis gives the seeded, reproducible draws and shrinks nothing here (a load is
seconds), so `database=None` and no shrinking phase.
"""

from __future__ import annotations

import codecs
import io
import json
import os
import resource
import shutil
import signal
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

FEEDS = {
    "csv": "safety/road_accidents",
    "jsonl": "safety/sergek_violations",
    "open311": "housing/open311_requests",
    "gtfs_static": "transport/gtfs_static",
    "gtfs_rt": "transport/gtfs_rt_trip_updates",
    "fhir_bulk": "health/fhir_bulk",
    "oneroster": "education/oneroster",
}
SEED_DAY = date(2025, 3, 3)  # a Monday: the OneRoster bulk and a GTFS build land
FIRST_DAY = date(2030, 1, 1)  # the fuzzed inputs' landing days (one each)
REPO = Path(__file__).resolve().parents[2]
CONFORMANCE = REPO.parent / "shared" / "conformance"
FIXTURES = REPO / "tests" / "fixtures"


class Hang(Exception):
    pass


@dataclass
class Input:
    """One fuzzed landing: files (name → bytes; a str value is a symlink target, None a named pipe)."""

    files: dict[str, bytes | str | None]
    mutations: list[str]


@dataclass
class Report:
    fmt: str
    inputs: int = 0
    rows: dict[str, int] = field(default_factory=dict)  # ledger statuses
    findings: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    slowest: float = 0.0


# --- seeds -----------------------------------------------------------------------------------------


def seeds(fmt: str, scratch: Path) -> list[dict[str, bytes]]:
    """Real landings of the format: each a folder's files (name → bytes)."""
    from qala_devkit.simulate import simulate

    feed = FEEDS[fmt]
    world = scratch / "seed-world"
    if not (world / "landing" / feed).exists():
        # small files (a load is the unit of cost), the small registers at a scale that fills them
        simulate(world, SEED_DAY, 1, scale=0.001, seed=3, feeds=[feed], defect_rate=0, workers=1,
                 scales={"safety/road_accidents": 0.5})
    found: list[dict[str, bytes]] = []
    for folder in sorted((world / "landing" / feed).glob("*")):
        files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
        if fmt == "fhir_bulk":
            found.append(files)
        else:
            found += [{name: data} for name, data in list(files.items())[:4] if data]
    extra = {
        "csv": [],
        "jsonl": [],
        "open311": [CONFORMANCE / "open311"],
        "gtfs_static": [CONFORMANCE / "gtfs", "zip:" + str(FIXTURES / "gtfs" / "reference_allowances")],
        "gtfs_rt": [],
        "fhir_bulk": ["dir:" + str(CONFORMANCE / "fhir" / "synthea-10-patients"),
                      "dir:" + str(FIXTURES / "fhir" / "no_manifest"), "dir:" + str(FIXTURES / "fhir" / "bulk_publish")],
        "oneroster": [CONFORMANCE / "oneroster", "zip:" + str(FIXTURES / "oneroster" / "v1p1_vendor"),
                      "zip:" + str(FIXTURES / "oneroster" / "v1p2_blank_modes")],
    }[fmt]
    for source in extra:
        text = str(source)
        if text.startswith("zip:"):
            folder = Path(text[4:])
            found.append({folder.name + ".zip": _zip({p.name: p.read_bytes() for p in sorted(folder.iterdir())})})
        elif text.startswith("dir:"):
            folder = Path(text[4:])
            if folder.is_dir():
                found.append({p.name: p.read_bytes() for p in sorted(folder.iterdir())})
        elif Path(text).is_dir():
            found += [{p.name: p.read_bytes()} for p in sorted(Path(text).iterdir())]
    return found


def _zip(members: dict[str, bytes], names: list[str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for i, (name, data) in enumerate(members.items()):
            archive.writestr(names[i] if names else name, data)
    return buffer.getvalue()


# --- mutations -------------------------------------------------------------------------------------


def _bytes_mutation(draw, st, data: bytes) -> tuple[bytes, str]:
    """One mutation of a file's bytes."""
    kind = draw(st.sampled_from(["flip", "cut", "dup_line", "del_line", "huge_field", "huge_line", "deep_json",
                                 "encoding", "nul", "splice"]))
    # Positions from a seeded Random: hypothesis leans to small integers (the header's first byte).
    rnd = draw(st.randoms(use_true_random=False))
    n = len(data)
    at = rnd.randrange(n) if n else 0
    lines = data.split(b"\n")
    line = rnd.randrange(len(lines))
    if kind == "flip" and n:
        flipped = bytearray(data)
        for _ in range(rnd.randint(1, 8)):
            flipped[rnd.randrange(n)] ^= rnd.randint(1, 255)
        return bytes(flipped), kind
    if kind == "cut":
        return data[:at], f"cut at {at}"
    if kind == "dup_line":
        return b"\n".join(lines[: line + 1] + [lines[line]] + lines[line + 1:]), f"line {line + 1} twice"
    if kind == "del_line":
        return b"\n".join(lines[:line] + lines[line + 1:]), f"line {line + 1} deleted"
    if kind == "huge_field":
        size = draw(st.sampled_from([1 << 16, 1 << 20, 8 << 20]))
        return data[:at] + b"A" * size + data[at:], f"{size:,} bytes in a field"
    if kind == "huge_line":
        size = draw(st.sampled_from([1 << 20, 16 << 20]))
        return data + b"\n" + b"x," * (size // 2) + b"\n", f"a line of {size:,} bytes"
    if kind == "deep_json":
        depth = draw(st.sampled_from([1000, 100_000]))
        return b"\n".join(lines[:line] + [b'{"a":' * depth + b"1" + b"}" * depth] + lines[line + 1:]), f"JSON {depth} deep"
    if kind == "encoding":
        target = draw(st.sampled_from(["utf-16", "cp1251", "latin-1"]))
        text = data.decode("utf-8", errors="replace")
        return text.encode(target, errors="replace"), f"as {target}"
    if kind == "nul":
        return data[:at] + b"\x00" * rnd.randint(1, 64) + data[at:], "NUL bytes"
    other = rnd.randrange(n) if n else 0  # splice: a piece of the file again elsewhere
    return data[:at] + data[min(at, other): max(at, other)][: 1 << 16] + data[at:], "spliced"


def _zip_mutation(draw, st, data: bytes) -> tuple[bytes, str]:
    """A zip's members mutated and zipped again, or an archive that attacks the reader."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = {i.filename: archive.read(i) for i in archive.infolist() if not i.is_dir()}
    except Exception:
        return _bytes_mutation(draw, st, data)
    kind = draw(st.sampled_from(["member", "member", "bytes", "slip", "absolute", "twice", "ratio_bomb",
                                 "count_bomb", "drop"]))
    names = list(members)
    if not names or kind == "bytes":
        return _bytes_mutation(draw, st, data)
    name = draw(st.sampled_from(names))
    if kind == "member":
        mutated, how = _bytes_mutation(draw, st, members[name])
        return _zip({**members, name: mutated}), f"{name}: {how}"
    if kind in ("slip", "absolute"):
        evil = "../../outside/evil.txt" if kind == "slip" else "/tmp/qala-fuzz-evil.txt"
        return _zip({**members, evil: b"written where it must not be\n"}), f"member {evil}"
    if kind == "twice":
        listed = names + [name]
        return _zip({**members, name + "\x00twice": members[name]}, names=listed), f"{name} twice"
    if kind == "ratio_bomb":
        return _zip({**members, name: members[name] + b"\x00" * (64 << 20)}), f"{name} padded to a 64 MB bomb"
    if kind == "count_bomb":
        return _zip({**members, **{f"f{i}.txt": b"" for i in range(5000)}}), "5,000 members"
    del members[name]
    return _zip(members), f"{name} removed"


def draw_input(draw, st, fmt: str, seed_list: list[dict[str, bytes]]) -> Input:
    base = dict(draw(st.sampled_from(seed_list)))
    mutations = []
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(sorted(base)))
        data = base[name]
        if not isinstance(data, bytes):
            continue
        kind = draw(st.sampled_from(["content", "content", "content", "content", "symlink", "fifo"]))
        if kind == "symlink":
            base[name + ".lnk"] = "/etc/hostname"
            mutations.append("a symbolic link out of the warehouse")
        elif kind == "fifo":
            base["pipe" + Path(name).suffix] = None
            mutations.append("a named pipe")
        elif name.endswith(".zip"):
            base[name], how = _zip_mutation(draw, st, data)
            mutations.append(f"{name}: {how}")
        else:
            base[name], how = _bytes_mutation(draw, st, data)
            mutations.append(f"{name}: {how}")
    return Input(base, mutations)


# --- running ---------------------------------------------------------------------------------------


def land_input(root: Path, feed: str, day: date, item: Input) -> Path:
    folder = root / "landing" / feed / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in item.files.items():
        path = folder / name
        if data is None:
            os.mkfifo(path)
        elif isinstance(data, str):
            path.symlink_to(data)
        else:
            path.write_bytes(data)
    return folder


def check_property(root: Path, feed: str, rows: list, days: list[date]) -> list[str]:
    """What the property says of one load: the broken promises, as text."""
    from transforms import runs

    problems = []
    files = [f for day in days for f in runs.landed_files(feed, day, day, root)]
    missing = runs.unaccounted(feed, files, {r.source_file for r in rows}, root)
    problems += [f"no ledger row: {m}" for m in missing]
    for row in rows:
        if row.rows_in != row.rows_published + row.rows_quarantined:
            problems.append(f"{row.source_file}: rows_in {row.rows_in} != {row.rows_published} + {row.rows_quarantined}")
        # the file itself, or (a FHIR manifest's row) the file of its export that is at fault
        folder = str(Path(row.source_file).parent) + "/"
        if row.status == "failed" and folder not in (row.reason or ""):
            problems.append(f"{row.source_file}: a failed row whose reason names no landed file: {row.reason}")
    canary = root.parent / "outside"
    if any(canary.iterdir()):
        problems.append(f"written outside the warehouse: {sorted(p.name for p in canary.iterdir())}")
    return problems


def load_days(root: Path, feed: str, days: list[date], seconds: float) -> tuple[list, str | None]:
    """Load the days' files; (ledger rows, the uncaught error or hang, if any)."""
    from transforms import runs
    from transforms.load import LoadFailure, load_files

    def alarm(signum, frame):
        raise Hang(f"no answer after {seconds:.0f} s")

    files = [f for day in days for f in runs.landed_files(feed, day, day, root)]
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(max(1, int(seconds)))
    try:
        return load_files(feed, files, run_id=f"fuzz-{days[0]}", root=root), None
    except LoadFailure as failure:
        return failure.rows, None
    except (Exception, Hang, MemoryError) as error:  # noqa: BLE001 - every escape is a finding
        return [], f"{type(error).__name__}: {str(error)[:500]}"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def fuzz_format(fmt: str, inputs: int, root: Path, per_example: int = 10, seconds_per_input: float = 60,
                seed: int = 0) -> Report:
    """`inputs` fuzzed landings of one format, `per_example` loaded together."""
    from hypothesis import HealthCheck, Phase, given, settings as hsettings, strategies as st

    from transforms import lake

    feed = FEEDS[fmt]
    report = Report(fmt)
    scratch = root.parent
    (scratch / "outside").mkdir(exist_ok=True)
    lake.ensure_lake(root)
    seed_list = seeds(fmt, scratch)
    out = root / "reports" / "fuzz" / fmt
    counter = {"day": 0}

    def save(item: Input, day: date, what: str) -> None:
        folder = out / f"finding-{len(report.findings) + 1:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in item.files.items():
            if isinstance(data, bytes):
                (folder / name).write_bytes(data)
        (folder / "finding.json").write_text(json.dumps({"format": fmt, "feed": feed, "day": day.isoformat(),
                                                          "mutations": item.mutations, "what": what}, indent=2))
        report.findings.append({"day": day.isoformat(), "mutations": item.mutations, "what": what,
                                "kept": str(folder)})

    examples = max(1, -(-inputs // per_example))

    @hsettings(max_examples=examples, deadline=None, database=None, derandomize=True,
               phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(st.data())
    def property_(data):
        batch = []
        for _ in range(per_example):
            if report.inputs + len(batch) >= inputs:
                break
            item = draw_input(data.draw, st, fmt, seed_list)
            day = FIRST_DAY + timedelta(days=counter["day"])
            counter["day"] += 1
            land_input(root, feed, day, item)
            batch.append((day, item))
        if not batch:
            return
        started = time.perf_counter()
        days = [d for d, _ in batch]
        rows, error = load_days(root, feed, days, seconds_per_input * len(batch))
        elapsed = time.perf_counter() - started
        report.seconds += elapsed
        report.slowest = max(report.slowest, elapsed / len(batch))
        problems = check_property(root, feed, rows, days) if error is None else []
        if error is not None or problems:
            # bisect: each input again on its own, under a fresh run id
            for day, item in batch:
                alone, alone_error = load_days(root, feed, [day], seconds_per_input)
                what = alone_error or "; ".join(check_property(root, feed, alone, [day]))
                if what:
                    save(item, day, what)
                rows = [r for r in rows if not r.source_file.startswith(f"landing/{feed}/{day}")] + alone
        for row in rows:
            report.rows[row.status] = report.rows.get(row.status, 0) + 1
        report.inputs += len(batch)
        canary = scratch / "outside"
        for stray in list(canary.iterdir()):
            stray.unlink()

    property_()
    return report


def limit_memory(gb: float) -> None:
    soft = int(gb * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (soft, resource.getrlimit(resource.RLIMIT_AS)[1]))


def main(formats: list[str], inputs: int, memory_gb: float = 6.0, seconds_per_input: float = 60,
         keep: Path | None = None) -> int:
    """`qala fuzz`: each format in a child process (its own memory limit), then one table."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    scratch = Path(tempfile.mkdtemp(prefix="qala-fuzz-"))
    reports = []
    try:
        for fmt in formats:
            with context.Pool(1) as pool:
                reports.append(pool.apply(_child, (fmt, inputs, scratch / fmt, memory_gb, seconds_per_input)))
    finally:
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            for fmt in formats:
                found = scratch / fmt / "warehouse" / "reports" / "fuzz" / fmt
                if found.exists():
                    shutil.copytree(found, keep / fmt, dirs_exist_ok=True)
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"{'format':<12} {'inputs':>6} {'ledger rows by status':<52} {'findings':>8} {'s/input':>8} {'slowest':>8}")
    for r in reports:
        statuses = ", ".join(f"{n} {s}" for s, n in sorted(r.rows.items()))
        print(f"{r.fmt:<12} {r.inputs:>6} {statuses:<52} {len(r.findings):>8} "
              f"{r.seconds / max(r.inputs, 1):>8.2f} {r.slowest:>8.2f}")
        for finding in r.findings:
            print(f"  ✗ {finding['day']}: {'; '.join(finding['mutations'])} → {finding['what']}")
    if keep is not None:
        print(f"inputs of the findings: {keep}")
    return 1 if any(r.findings for r in reports) else 0


def _child(fmt: str, inputs: int, scratch: Path, memory_gb: float, seconds_per_input: float) -> Report:
    """One format in its own process: a warehouse and TMPDIR under `scratch`, memory limited."""
    root = scratch / "warehouse"
    (root / "tmp").mkdir(parents=True, exist_ok=True)
    os.environ["QALA_WAREHOUSE"] = str(root)
    os.environ["TMPDIR"] = str(root / "tmp")  # every scratch file of a load stays in the warehouse
    tempfile.tempdir = None
    os.environ.setdefault("QALA_PSEUDONYMISATION_KEY", "fuzz-" + "0" * 32)
    limit_memory(memory_gb)
    codecs.lookup("utf-16")  # loaded before the limit bites
    return fuzz_format(fmt, inputs, root, seconds_per_input=seconds_per_input)
