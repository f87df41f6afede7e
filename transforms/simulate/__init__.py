"""Source-system simulator: writes the daily exports the pipeline ingests into landing/.

Each feed has a generator `generate_day(root, day, scale, seed) -> rows` registered in
GENERATORS, and its ground truth (every parameter of the effects planted in the data) in
GROUND_TRUTHS. The ground truth goes to `<root>/simulator/ground_truth.json`, outside
landing/, so it is never ingested: it is what the pipeline's results are checked against.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

from transforms.settings import simulator_dir
from transforms.simulate import road_accidents

GENERATORS: dict[str, Callable[[Path, date, float, int], int]] = {
    road_accidents.FEED: road_accidents.generate_day,
}
GROUND_TRUTHS: dict[str, Callable[[], dict]] = {
    road_accidents.FEED: road_accidents.ground_truth,
}


def simulate(
    root: Path,
    start: date,
    days: int,
    scale: float = 1.0,
    seed: int = 42,
    domains: list[str] | None = None,
    progress: bool = False,
) -> dict[str, int]:
    """Write `days` days of exports from `start` for the feeds of `domains` (default: all).

    Returns the rows written per feed, e.g. {"safety/road_accidents": 21873}.
    """
    root = Path(root)
    feeds = _select_feeds(domains)
    rows = dict.fromkeys(feeds, 0)
    for i in range(days):
        day = start + timedelta(days=i)
        for feed in feeds:
            rows[feed] += GENERATORS[feed](root, day, scale, seed)
        if progress:
            _show_progress(i + 1, days, day)
    end = start + timedelta(days=days - 1)
    run = {"start": start.isoformat(), "days": days, "end": end.isoformat(),
           "scale": scale, "seed": seed}  # fmt: skip
    truths = {feed: {**GROUND_TRUTHS[feed](), "run": run, "rows": rows[feed]} for feed in feeds}
    write_ground_truth(root, truths)
    return rows


def write_ground_truth(root: Path, truths: dict[str, dict]) -> Path:
    """Merge the feeds' ground truth into ground_truth.json: other feeds' entries stay."""
    path = simulator_dir(root) / "ground_truth.json"
    merged = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    merged.update(truths)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(merged, ensure_ascii=False, indent=2, sort_keys=True)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def _select_feeds(domains: list[str] | None) -> list[str]:
    if domains is None:
        return list(GENERATORS)
    known = {feed.split("/")[0] for feed in GENERATORS}
    unknown = set(domains) - known
    if unknown:
        raise ValueError(f"unknown domain(s) {sorted(unknown)}; known: {sorted(known)}")
    return [feed for feed in GENERATORS if feed.split("/")[0] in domains]


def _show_progress(done: int, total: int, day: date, width: int = 30) -> None:
    if not sys.stderr.isatty() and done != total:
        return  # a log file gets the final line only
    filled = width * done // total
    bar = "#" * filled + "." * (width - filled)
    sys.stderr.write(f"\rsimulating [{bar}] {done}/{total} {day.isoformat()}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()
