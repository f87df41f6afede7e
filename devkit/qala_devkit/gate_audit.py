"""How exact the row checks and the gate are: every defect the simulator planted (its defect log,
`simulator/defects/`) against what the load path did with it, per feed.

A planted defect is *caught* when the load path did what its kind calls for:

* a bad record (a broken IIN, an impossible or future value, an unknown KATO code, a duplicate,
  a missing field, a line that is not JSON, the cut-off last line of a truncated file): that
  record is in quarantine, at its file, member and line;
* a broken file (a GTFS zip without a required file, a required column renamed): the file is not
  published (ledger status `failed` or `blocked`);
* an added column: the file is published and its ledger row names the schema drift;
* what real sources do and is not an error (a Windows-1251 file, a late record): published.

Recall is caught / planted; precision is the share of quarantined records that were planted
defects (a clean record in quarantine is a false alarm). A bad record inside a file that failed
as a whole is counted as caught (nothing of it was published) and reported apart, since the rule
meant for it did not get to see it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from transforms import lake, runs
from transforms.contract import all_feeds, load_contract
from qala_devkit.simulate.base import read_defects

ROW, FILE, DRIFT, LOADED = "quarantined", "file not published", "drift reported", "published"
OUTCOME = {
    "duplicate_record": ROW, "invalid_iin": ROW, "impossible_value": ROW, "future_date": ROW,
    "outside_kazakhstan": ROW, "unknown_kato": ROW, "missing_required": ROW, "invalid_json": ROW,
    "truncated_file": ROW, "gtfs_missing_file": FILE, "renamed_column": FILE, "added_column": DRIFT,
    "windows_1251": LOADED, "late_record": LOADED,
}


@dataclass
class FeedAudit:
    feed: str
    planted: int = 0
    not_taken: int = 0  # defects in records of kinds the contract does not take (rows_skipped)
    caught: int = 0
    caught_by_file: int = 0  # bad records of files that failed whole
    quarantined: int = 0  # distinct quarantined records (file, member, line)
    false_alarms: int = 0  # quarantined records no defect was planted in
    missed: list[dict] = field(default_factory=list)
    alarms: list[tuple] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.caught / self.planted if self.planted else 1.0

    @property
    def precision(self) -> float:
        return 1 - self.false_alarms / self.quarantined if self.quarantined else 1.0


def _location(defect: dict) -> tuple[str, str | None, int | None]:
    """(source_file, member, line) of a planted defect, as the lake's lineage columns name it."""
    path = "landing/" + defect["file"]
    if path.endswith(".ndjson"):  # a FHIR bulk export's resource file: a member of its manifest
        folder, name = path.rsplit("/", 1)
        return f"{folder}/manifest.json", name, defect.get("line")
    if defect.get("record") is not None:  # a protobuf entity: its 1-based position
        return path, None, defect["record"] + 1
    return path, defect.get("member"), defect.get("line")


def _members(feed: str) -> set[str]:
    """The files inside a landed archive or export that the contract takes ("users.csv",
    "Patient.ndjson"); empty for a feed of plain files."""
    members = set()
    for table in load_contract(feed).tables:
        if table.member:
            members |= {table.member, f"{table.member}.ndjson"}
    return members


def audit(root: Path) -> dict[str, FeedAudit]:
    con = lake.connect(root, read_only=True)
    try:
        ledger = {f: (status, reason or "") for f, status, reason in con.execute(
            "select source_file, status, reason from ops.load_ledger "
            "qualify row_number() over (partition by source_file order by finished_at desc) = 1").fetchall()}
        quarantined: dict[str, set] = defaultdict(set)
        for feed in all_feeds():
            for table in load_contract(feed).tables:
                quarantined[feed] |= set(con.execute(
                    f"select distinct _source_file, nullif(_source_member, ''), _source_line "
                    f"from quarantine.{table.silver}").fetchall())
    finally:
        con.close()
    out = {feed: FeedAudit(feed) for feed in all_feeds()}
    taken = {feed: _members(feed) for feed in all_feeds()}
    planted: dict[str, set] = defaultdict(set)
    for defect in read_defects(root):
        feed, kind = defect["feed"], defect["kind"]
        where = _location(defect)
        audit_ = out[feed]
        if where[1] is not None and taken[feed] and where[1] not in taken[feed]:
            audit_.not_taken += 1  # e.g. a FHIR Observation: counted in rows_skipped, never loaded
            continue
        expected = OUTCOME[kind]
        if expected == ROW:
            planted[feed].add(where)
        if expected == LOADED:
            continue
        audit_.planted += 1
        status, reason = ledger.get(where[0], ("not loaded", ""))
        if expected == ROW:
            caught = where in quarantined[feed]
            if not caught and status in ("failed", "blocked"):
                caught = True
                audit_.caught_by_file += 1
        elif expected == FILE:
            caught = status in ("failed", "blocked")
        else:  # DRIFT
            caught = status == "published" and "schema drift" in reason and defect.get("column", "") in reason
        audit_.caught += caught
        if not caught:
            audit_.missed.append({**defect, "ledger": status})
    for feed, audit_ in out.items():
        audit_.quarantined = len(quarantined[feed])
        alarms = sorted(quarantined[feed] - planted[feed], key=str)
        audit_.false_alarms, audit_.alarms = len(alarms), alarms
    return out


def report(audits: dict[str, FeedAudit]) -> str:
    lines = [f"{'feed':<32}{'planted':>8}{'caught':>8}{'recall':>8}  {'quarantined':>11}{'clean':>7}"
             f"{'precision':>10}  {'not taken':>9}"]
    for a in audits.values():
        lines.append(f"{a.feed:<32}{a.planted:>8}{a.caught:>8}{a.recall:>8.1%}  {a.quarantined:>11}"
                     f"{a.false_alarms:>7}{a.precision:>10.1%}  {a.not_taken:>9}")
    return "\n".join(lines)


def run(root: Path, start: date = date(2025, 3, 30), days: int = 5, scale: float = 0.02,
        defect_rate: float = 0.2, seed: int = 11) -> dict[str, FeedAudit]:
    """Simulate every feed with planted defects into the (new) warehouse `root`, load each feed's
    files through the load path, and audit. The default days cross a weekend, a month's end and
    start (the monthly workforce report) and the first-grade applications' opening."""
    from transforms.load import LoadFailure, load_files
    from qala_devkit.simulate import simulate

    simulate(root, start, days, scale=scale, seed=seed, defect_rate=defect_rate, workers=1)
    for feed in all_feeds():
        paths = runs.landed_files(feed, date.min, date.max, root)
        try:
            load_files(feed, paths, run_id="gate-audit", root=root)
        except LoadFailure:  # the files that failed have their ledger rows, which the audit reads
            pass
    return audit(root)


def main(days: int, scale: float, defect_rate: float) -> int:
    """`qala gate-audit`: the audit on a scratch warehouse; exit code 1 below 100% anywhere."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="qala-gate-audit-") as scratch:
        audits = run(Path(scratch) / "warehouse", days=days, scale=scale, defect_rate=defect_rate)
    print(report(audits))
    for a in audits.values():
        for m in a.missed[:5]:
            print(f"missed  {a.feed}: {m['kind']} in {m['file']} line {m.get('line', m.get('record'))} ({m.get('detail')})")
        for alarm in a.alarms[:5]:
            print(f"clean record quarantined  {a.feed}: {alarm}")
    return 0 if all(a.recall == 1.0 and a.precision == 1.0 for a in audits.values()) else 1
