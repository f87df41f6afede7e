"""What every feed generator shares: the day's context, the defect log, and safe file writers.

A feed module (one per feed, e.g. `road_accidents.py`) defines

    FEED = "<domain>/<feed>"
    def generate_day(ctx: DayContext) -> int        # writes the day's export(s), returns records
    def ground_truth() -> dict                      # every parameter of the planted effects

and records every defect it plants with `ctx.record(...)` / `RowDefects`. After each
(feed, day) the simulator writes the day's defect log to
`<root>/simulator/defects/<domain>/<feed>/<YYYY-MM-DD>.jsonl`, outside landing/, so the
pipeline never sees it.

Line numbers in defect records are what an engineer opening the file would see:
  - CSV: the physical line, 1-based, the header being line 1 (a record spanning lines: its
    first line);
  - JSON Lines / NDJSON, and Open311 JSON written one request per line: the physical line;
  - files inside a zip (GTFS): `member` names the file, `line` is counted within it;
  - GTFS-Realtime protobuf: `line` is null, `record` is the 0-based entity index;
  - whole-file defects (Windows-1251, schema drift, a missing GTFS file): `line` is null.

Defect kinds (stable names, used by tests and, later, by the gates):
"""

from __future__ import annotations

import codecs
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from transforms.contract import FeedNamed
from transforms.settings import landing_dir, simulator_dir, write_atomic  # noqa: F401 (simulators import it here)
from qala_devkit.simulate.people import break_check_digit
from qala_devkit.simulate.world import rng_for

DEFECT_KINDS = {
    "duplicate_record": "a record sent twice (same key); `detail` names the line of the first copy",
    "invalid_iin": "an IIN (or BIN) whose check digit is wrong",
    "impossible_value": "a value that cannot be true: negative energy or amount, an age of 130",
    "future_date": "an event time after the export was written",
    "outside_kazakhstan": "coordinates outside Kazakhstan's bounding box",
    "unknown_kato": "a KATO region code that does not exist",
    "missing_required": "a required field left empty",
    "windows_1251": "a whole file in Windows-1251 instead of UTF-8 (an old register)",
    "added_column": "schema drift: a column the contract does not know",
    "renamed_column": "schema drift: a contract column sent under another name",
    "late_record": "a record delivered in a later day's export than the day it happened",
    "truncated_file": "a file cut off mid-record (the last line is partial)",
    "gtfs_missing_file": "a GTFS zip without one of its required files",
    "invalid_json": "a line of a JSON Lines / NDJSON file that is not JSON",
}
__doc__ += "".join(f"  - {kind}: {text}\n" for kind, text in DEFECT_KINDS.items())


@dataclass(frozen=True)
class Defect:
    file: str  # path relative to landing/, with forward slashes
    kind: str
    line: int | None = None
    column: str | None = None
    detail: str = ""
    member: str | None = None  # the file inside a zip
    record: int | None = None  # a protobuf entity index

    def __post_init__(self) -> None:
        if self.kind not in DEFECT_KINDS:
            raise ValueError(f"unknown defect kind {self.kind!r}")


@dataclass
class DayContext(FeedNamed):
    """One feed on one day: where to write, the randomness, and the defect log."""

    root: Path
    feed: str  # "<domain>/<feed>"
    day: date
    scale: float = 1.0
    seed: int = 42
    defect_rate: float = 0.0
    params: object | None = None  # the feed module's Params, when overridden (tests, CLI)
    # The run's first day: a source that publishes less often than daily (GTFS static, weekly)
    # also lands on it the build in force, as a new subscriber downloads the current feed.
    first_day: date | None = None
    defects: list[Defect] = field(default_factory=list)

    def rng(self, stream: str = "", day: date | None = None) -> np.random.Generator:
        """The random stream `stream` of this feed on `day` (default: this day).

        Separate streams keep independent choices independent: whether a file is truncated
        must not shift the values drawn for its records.
        """
        return rng_for(self.seed, self.feed + (":" + stream if stream else ""), day or self.day)

    def folder(self) -> Path:
        """landing/<domain>/<feed>/<YYYY-MM-DD>/ (created)."""
        path = landing_dir(self.domain, self.name, self.day, self.root)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def maybe(self, kind: str, share: float = 1.0) -> bool:
        """Whether today's file gets the whole-file defect `kind`: probability defect_rate x share,
        from the kind's own stream (so it does not depend on scale or on other defects)."""
        return bool(self.rng("file-defect:" + kind).random() < self.defect_rate * share)

    def record(self, path: Path, kind: str, line: int | None = None, **extra) -> None:
        self.defects.append(Defect(file=self.relative(path), kind=kind, line=line, **extra))

    def relative(self, path: Path) -> str:
        return Path(path).relative_to(Path(self.root) / "landing").as_posix()


# --- row-level defects -----------------------------------------------------------------------


class RowDefects:
    """Plants record-level defects in a frame of rendered (text) columns, keeping track of the
    rows touched; `finish()` returns the frame to write and records each defect with its line.

    Each row gets at most one defect. Duplicates are inserted last, right after the record
    they copy, so every line number is the line in the written file.

        planter = RowDefects(ctx, frame)
        planter.blank("kato_code")
        planter.duplicate()
        frame = planter.finish(path, header_lines=1)
    """

    def __init__(self, ctx: DayContext, frame: pl.DataFrame, stream: str = "row-defects"):
        self.ctx = ctx
        self.frame = frame
        self.rng = ctx.rng(stream)
        self.taken = np.zeros(frame.height, dtype=bool)
        self.marks: list[tuple[int, str, str | None, str]] = []  # (row, kind, column, detail)

    def pick(self, share: float = 1.0, eligible: np.ndarray | None = None) -> np.ndarray:
        """Rows (indices) to corrupt: each free row with probability defect_rate x share."""
        chosen = (self.rng.random(self.frame.height) < self.ctx.defect_rate * share) & ~self.taken
        if eligible is not None:
            chosen &= eligible
        return np.flatnonzero(chosen)

    def replace(self, kind: str, column: str,
                make: Callable[[np.random.Generator, list], Sequence], share: float = 1.0,
                detail: str = "", eligible: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
        """Give `column` new (bad) values in the picked rows; make(rng, old_values) -> new values."""
        rows = self.pick(share, eligible)
        if rows.size:
            series = self.frame[column]
            old = series.gather(rows).to_list()
            new = pl.Series(column, list(make(self.rng, old)), dtype=series.dtype)
            self.frame = self.frame.with_columns(series.clone().scatter(rows, new))  # scatter is in place
            self.taken[rows] = True
            self.marks += [(int(r), kind, column, detail or f"{column}: {o!r} -> {n!r}")
                           for r, o, n in zip(rows, old, new.to_list(), strict=True)]  # fmt: skip
        return rows

    def blank(self, column: str, share: float = 1.0, **kwargs) -> np.ndarray:
        """A required field sent empty (`missing_required`)."""
        return self.replace("missing_required", column, lambda rng, old: [None] * len(old), share, **kwargs)

    def break_iin(self, column: str, share: float = 1.0, **kwargs) -> np.ndarray:
        """An IIN or BIN with a wrong check digit (`invalid_iin`)."""
        return self.replace("invalid_iin", column, lambda rng, old: break_check_digit(old).tolist(), share,
                            **kwargs)

    def duplicate(self, share: float = 1.0) -> np.ndarray:
        """Send some records twice: each copy right after its original."""
        rows = self.pick(share)
        if rows.size == 0:
            return rows
        n = self.frame.height
        source = np.concatenate([np.arange(n), rows])
        order = np.argsort(np.concatenate([np.arange(n) * 2, rows * 2 + 1]), kind="stable")
        position = np.empty(order.size, dtype=np.int64)
        position[order] = np.arange(order.size)  # where each element of `source` ends up
        self.frame = self.frame[source[order]]
        self.taken = np.concatenate([self.taken, np.ones(rows.size, dtype=bool)])[order]
        self.marks = [(int(position[r]), kind, column, detail) for r, kind, column, detail in self.marks]
        self._duplicates = [(int(position[n + i]), int(position[r])) for i, r in enumerate(rows)]
        return rows

    def finish(self, path: Path, header_lines: int = 1) -> pl.DataFrame:
        """Record every planted defect against `path` (the line = header_lines + row + 1)."""
        for row, kind, column, detail in self.marks:
            self.ctx.record(path, kind, header_lines + row + 1, column=column, detail=detail)
        for copy, original in getattr(self, "_duplicates", []):
            self.ctx.record(path, "duplicate_record", header_lines + copy + 1,
                            detail=f"same record as line {header_lines + original + 1}")
        return self.frame


def drift_schema(ctx: DayContext, frame: pl.DataFrame, path: Path, source: str,
                 added: tuple[str, Callable[[], pl.Expr | pl.Series]],
                 renamed: tuple[str, str]) -> pl.DataFrame:  # fmt: skip
    """Schema drift, at most one kind per file, each logged: a column added after the last one
    (`added` = (name, a function making its values)) or a column sent under another name
    (`renamed` = (contract name, name sent)). `source` names who drifted ("register", ...)."""
    if ctx.maybe("added_column"):
        name, make = added
        ctx.record(path, "added_column", None, column=name,
                   detail=f"the {source} added a column '{name}' after the last one")
        return frame.with_columns(make().alias(name))
    if ctx.maybe("renamed_column"):
        old, new = renamed
        ctx.record(path, "renamed_column", None, column=old, detail=f"sent as '{new}'")
        return frame.rename({old: new})
    return frame


def by_region(frame: pl.DataFrame, regions: int) -> list[pl.DataFrame]:
    """The rows of each region (an integer `region` column in load_regions() order), in their
    order, without the region column: one frame per region, empty where it has no rows."""
    parts = frame.partition_by("region", as_dict=True, include_key=False) if frame.height else {}
    empty = frame.drop("region").clear()
    return [parts.get((i,), empty) for i in range(regions)]


# --- writers ---------------------------------------------------------------------------------


def csv_bytes(frame: pl.DataFrame, encoding: str = "utf-8", float_precision: int | None = None) -> bytes:
    text = frame.write_csv(float_precision=float_precision)
    return text.encode("utf-8") if codecs.lookup(encoding).name == "utf-8" else text.encode(encoding)


def write_csv(frame: pl.DataFrame, path: Path, encoding: str = "utf-8",
              float_precision: int | None = None) -> Path:  # fmt: skip
    return write_atomic(path, csv_bytes(frame, encoding, float_precision))


def jsonl_bytes(frame: pl.DataFrame) -> bytes:
    """One JSON object per line (polars' NDJSON writer: vectorised, keys in column order)."""
    return frame.write_ndjson().encode("utf-8")


def truncate(data: bytes, rng: np.random.Generator, encoding: str = "utf-8",
             delimiter: bytes | None = None) -> tuple[bytes, int]:
    """Cut `data` inside its last record, as a transfer that died would.

    In UTF-8 the cut falls between characters (a cut inside one would make the file
    undecodable, not truncated); in a one-byte code page such as Windows-1251 every byte is a
    character. In a CSV (`delimiter` given) the cut falls before the record's last field: a cut
    inside the last field leaves a record no reader can tell from a whole one (RFC 4180 makes
    the last line break optional), a wrong value rather than a truncation a check could see.
    Returns the bytes kept and the (1-based) line number of the partial last line.
    """
    lines = data.rstrip(b"\n").split(b"\n")
    if len(lines) < 2:
        return data, len(lines)
    last = lines[-1]
    keep = max(1, int(len(last) * rng.uniform(0.2, 0.8)))
    if delimiter is not None and last.rfind(delimiter) > 0:
        keep = min(keep, last.rfind(delimiter))
    if codecs.lookup(encoding).name == "utf-8":
        inside = lambda k: k < len(last) and last[k] & 0xC0 == 0x80  # noqa: E731 - a continuation byte
        while keep > 1 and inside(keep):
            keep -= 1
        while inside(keep):  # the line starts with a multi-byte character: keep it whole
            keep += 1
    return b"\n".join(lines[:-1]) + b"\n" + last[:keep], len(lines)


def to_windows_1251(text: str) -> str:
    """How the old Windows-1251 registers write Kazakh: the letters that code page lacks are
    folded to their Russian look-alikes (і/І exist in Windows-1251 and stay)."""
    return text.translate(_RUSSIAN_FORMS)


_RUSSIAN_FORMS = str.maketrans("әғқңөұүһӘҒҚҢӨҰҮҺ", "агкноуухАГКНОУУХ")


# --- the defect log --------------------------------------------------------------------------


def defects_path(root: Path, feed: str, day: date) -> Path:
    return simulator_dir(root) / "defects" / feed / f"{day.isoformat()}.jsonl"


def write_defects(ctx: DayContext) -> None:
    """Replace the (feed, day) defect log: regenerating a day replaces its defects too."""
    path = defects_path(ctx.root, ctx.feed, ctx.day)
    if not ctx.defects:
        path.unlink(missing_ok=True)
        return
    # vars(), not dataclasses.asdict: asdict deep-copies, and a big day logs ~10^4 late records.
    lines = [json.dumps({k: v for k, v in vars(d).items() if v is not None}, ensure_ascii=False,
                        sort_keys=True) for d in ctx.defects]  # fmt: skip
    write_atomic(path, ("\n".join(lines) + "\n").encode("utf-8"))


def read_defects(root: Path, feed: str | None = None) -> list[dict]:
    """Every recorded defect (of one feed, or all), in file order."""
    base = simulator_dir(root) / "defects"
    pattern = f"{feed}/*.jsonl" if feed else "*/*/*.jsonl"
    out = []
    for path in sorted(base.glob(pattern)):
        feed_name = path.parent.relative_to(base).as_posix()
        out += [{"feed": feed_name, **json.loads(line)} for line in path.read_text(encoding="utf-8").splitlines()]
    return out
