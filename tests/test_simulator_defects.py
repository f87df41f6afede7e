"""The simulator's defect log is true: every defect it lists is in the landing file, at the file,
member, line and column it names, and of the kind it says. One run of every feed, generic over
formats (CSV, JSON Lines / NDJSON, Open311 JSON one request per line, zip members, protobuf)."""

from __future__ import annotations

import ast
import csv
import io
import json
import re
import zipfile
from collections import Counter
from datetime import date
from functools import lru_cache
from pathlib import Path

import pytest

from qala_devkit.simulate import feed_modules, simulate
from qala_devkit.simulate.base import DEFECT_KINDS, read_defects
from qala_devkit.simulate.people import is_valid
from qala_devkit.simulate.world import KZ_LAT, KZ_LON, load_regions

# 30 March to 3 April: a weekend, month end and start, and first-grade applications opening.
START, DAYS, SCALE, RATE = date(2025, 3, 30), 5, 0.02, 0.2


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("defects")
    simulate(root, START, DAYS, scale=SCALE, seed=11, defect_rate=RATE)
    return root


@pytest.fixture(scope="module")
def defects(run) -> list[dict]:
    return read_defects(run)


def test_every_feed_plants_defects_and_the_ground_truth_counts_them(run, defects):
    truth = json.loads((run / "simulator" / "ground_truth.json").read_text(encoding="utf-8"))
    by_feed = Counter(d["feed"] for d in defects)
    for feed in feed_modules():
        counts = truth[feed]["defects"]["count_by_kind"]
        assert sum(counts.values()) == by_feed[feed], feed
    assert set(truth) == set(feed_modules())


def test_the_run_plants_every_kind_the_issue_asks_for(defects):
    assert {d["kind"] for d in defects} == set(DEFECT_KINDS)


def test_no_defects_at_rate_zero_except_the_logged_features_of_real_sources(tmp_path):
    simulate(tmp_path, START, 2, scale=SCALE, seed=11, defect_rate=0.0)
    kinds = {d["kind"] for d in read_defects(tmp_path)}
    assert kinds <= {"late_record", "windows_1251"}


def test_every_logged_defect_is_where_the_log_says(run, defects):
    # File by file, so each file is read and split once.
    ordered = sorted(defects, key=lambda d: (d["file"], d.get("member") or ""))
    # A row defect in a file whose column was also renamed is found under the new name.
    for d in defects:
        if d["kind"] == "renamed_column" and (new := re.search(r"'([^']+)'", d.get("detail", ""))):
            RENAMED[(d["file"], d.get("member"), d["column"])] = new.group(1)
    problems = [f"{d}: {why}" for d in ordered if (why := _check(run, d))]
    assert not problems, "\n".join(problems[:20])


# --- locating a record -------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _bytes(root: Path, file: str, member: str | None) -> bytes:
    data = (root / "landing" / file).read_bytes()
    if member is None:
        return data
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return archive.read(member)


@lru_cache(maxsize=64)
def _lines(root: Path, file: str, member: str | None) -> list[str]:
    return _text(_bytes(root, file, member)).split("\n")


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1251")


@lru_cache(maxsize=64)
def _csv_records(root: Path, file: str, member: str | None) -> tuple[list[str], dict[int, dict]]:
    """Header and {first physical line: record} of a CSV file."""
    reader = csv.reader(io.StringIO(_text(_bytes(root, file, member)), newline=""))
    header = next(reader)
    records, start = {}, reader.line_num + 1
    for row in reader:
        records[start] = dict(zip(header, row, strict=False))
        start = reader.line_num + 1
    return header, records


def _json_line(line: str) -> dict:
    return json.loads(line.strip().rstrip(","))


def _values(record: dict, path: str) -> list:
    """Every value at a dotted path (lists are searched element by element)."""
    found = [record]
    for key in path.split("."):
        nxt = []
        for node in found:
            for item in node if isinstance(node, list) else [node]:
                if isinstance(item, dict) and key in item:
                    nxt.append(item[key])
        found = nxt
    flat = []
    for value in found:
        flat += value if isinstance(value, list) else [value]
    return flat


def _record_values(root: Path, d: dict) -> list | None:
    """The value(s) of the defect's column in its record; None if the record is not readable."""
    file, member, line = d["file"], d.get("member"), d["line"]
    name = member or file
    if name.endswith((".csv", ".txt")):
        _, records = _csv_records(root, file, member)
        if line not in records:
            return None
        column = RENAMED.get((file, member, d["column"]), d["column"])
        return [records[line].get(column)]
    lines = _lines(root, file, member)
    try:
        record = _json_line(lines[line - 1])
    except json.JSONDecodeError:
        return None
    values = _values(record, d["column"])
    return values or [None]


# --- the checks --------------------------------------------------------------------------------

RENAMED: dict[tuple, str] = {}  # (file, member, original column) -> the name it was sent under
_REPLACED = re.compile(r"^(?P<column>[\w.\[\]]+): (?P<old>.*) -> (?P<new>.*)$")
PREFIXES = {r.kato_prefix for r in load_regions()}


def _check(root: Path, d: dict) -> str | None:
    """None if the defect is there, else what is wrong."""
    kind, file, member, line = d["kind"], d["file"], d.get("member"), d.get("line")
    day = date.fromisoformat(file.split("/")[2])
    path = root / "landing" / file
    if not path.exists():
        return "no such file"
    if kind == "gtfs_missing_file":
        with zipfile.ZipFile(path) as archive:
            return "member present" if member in archive.namelist() else None
    data = _bytes(root, file, member)
    if file.endswith(".pb"):
        return _check_protobuf(data, d)
    if kind == "windows_1251":
        try:
            data.decode("utf-8")
            return "decodes as UTF-8"
        except UnicodeDecodeError:
            return None
    if kind == "truncated_file":
        lines = data.split(b"\n")
        return None if not data.endswith(b"\n") and line == len(lines) else "not cut at that line"
    if kind in ("added_column", "renamed_column"):
        header = _header(data, member or file)
        if kind == "added_column":
            return None if d["column"] in header else "column absent"
        new = re.search(r"'([^']+)'", d.get("detail", ""))
        if d["column"] in header or not new or new.group(1) not in header:
            return f"header {header}"
        return None
    text_lines = _lines(root, file, member)
    if line is None or not 1 <= line <= len(text_lines):
        return "line out of range"
    if kind == "invalid_json":
        try:
            _json_line(text_lines[line - 1])
            return "line parses as JSON"
        except json.JSONDecodeError:
            return None
    if kind == "duplicate_record":
        match = re.search(r"line (\d+)", d.get("detail", ""))
        if not match:
            return "detail names no line"
        first = int(match.group(1))
        same = text_lines[first - 1].rstrip(",") == text_lines[line - 1].rstrip(",")
        return None if same else "lines differ"
    values = _record_values(root, d)
    if values is None:
        return "record not found"
    return _check_value(kind, values, d, day)


def _check_value(kind: str, values: list, d: dict, day: date) -> str | None:
    present = [v for v in values if v not in (None, "")]
    if kind == "missing_required":
        return None if not present else f"value present: {values}"
    if not present:
        return f"no value at {d['column']}"
    text = [str(v) for v in present]
    if replaced := _REPLACED.match(d.get("detail", "")):
        new = ast.literal_eval(replaced.group("new"))
        if str(new) not in text and not _same_number(new, text):
            return f"value {text} is not the logged {new!r}"
    if kind == "invalid_iin":
        return None if not is_valid(text).all() else f"valid number {text}"
    if kind == "future_date":
        return None if any(date.fromisoformat(t[:10]) > day for t in text) else f"not future: {text}"
    if kind == "late_record":
        return None if any(date.fromisoformat(t[:10]) < day for t in text) else f"not late: {text}"
    if kind == "outside_kazakhstan":
        coords = [float(t) for t in text]
        inside = all(KZ_LAT[0] <= c <= KZ_LAT[1] or KZ_LON[0] <= c <= KZ_LON[1] for c in coords)
        return None if not inside else f"inside Kazakhstan: {text}"
    if kind == "unknown_kato":
        return None if any(t[:2] not in PREFIXES for t in text) else f"known region: {text}"
    return None  # impossible_value: the logged new value is there (checked above)


def _same_number(new, text: list[str]) -> bool:
    try:
        return any(float(t) == float(new) for t in text)
    except (TypeError, ValueError):
        return False


def _header(data: bytes, name: str) -> list[str]:
    lines = _text(data).split("\n")
    if name.endswith((".csv", ".txt")):
        return next(csv.reader([lines[0]]))
    first = lines[1] if lines[0].strip() == "[" else lines[0]  # Open311: one request per line
    return list(_json_line(first).keys())


def _check_protobuf(data: bytes, d: dict) -> str | None:
    from google.protobuf.message import DecodeError
    from google.transit import gtfs_realtime_pb2

    message = gtfs_realtime_pb2.FeedMessage()
    try:
        message.ParseFromString(data)
    except DecodeError:
        return None if d["kind"] == "truncated_file" else "does not parse"
    if d["kind"] == "truncated_file":
        return "parses whole"
    record = d.get("record")
    return None if record is not None and 0 <= record < len(message.entity) else "no such entity"


def test_truncation_never_splits_a_utf8_character_but_may_cut_any_windows_1251_byte():
    import numpy as np

    from qala_devkit.simulate.base import truncate

    data = ("id,name\n1,Әлихан\n" + "Құдайберген Әбдіқадыров Ұзақбаев\n").encode("utf-8")
    for seed in range(200):
        cut, line = truncate(data, np.random.default_rng(seed))
        assert line == 3 and not cut.endswith(b"\n")
        cut.decode("utf-8")  # raises if a character was split
    cp1251 = data.decode("utf-8").translate(str.maketrans("ӘҚҰәқұ", "АКУакУ")).encode("cp1251")
    lengths = {len(truncate(cp1251, np.random.default_rng(seed), "cp1251")[0]) for seed in range(200)}
    assert len(lengths) > 10  # every byte is a character: the cut lands anywhere in the line
