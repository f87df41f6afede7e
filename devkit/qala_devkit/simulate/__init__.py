"""Source-system simulator: writes the daily exports the pipeline ingests into landing/.

Each feed is a module (see `base.py` for the interface): `generate_day(ctx) -> records`
writes the day's export(s) exactly as the source system delivers them, and `ground_truth()`
returns every parameter of the effects planted in the data. The ground truth goes to
`<root>/simulator/ground_truth.json` and the planted defects, file and line, to
`<root>/simulator/defects/<domain>/<feed>/<day>.jsonl`: outside landing/, so never ingested,
they are what the pipeline's results are checked against.
"""

from __future__ import annotations

import importlib
import json
import multiprocessing
import os
import pkgutil
import sys
from concurrent.futures import ProcessPoolExecutor
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from types import ModuleType

from transforms.settings import simulator_dir
from qala_devkit.simulate.base import DayContext, read_defects, write_defects

from qala_devkit import DEFAULT_DEFECT_RATE  # noqa: F401  (re-exported: its home)
CHUNK_DAYS = 31
_SHARED = {"base", "people", "world"}


def feed_modules() -> dict[str, ModuleType]:
    """feed name ("<domain>/<feed>") -> its generator module: every module of this package that
    declares a FEED, in feed-name order (the order a day's feeds are generated)."""
    names = [m.name for m in pkgutil.iter_modules(__path__) if m.name not in _SHARED]
    modules = [importlib.import_module(f"{__name__}.{name}") for name in names]
    return dict(sorted((m.FEED, m) for m in modules if hasattr(m, "FEED")))


def simulate(
    root: Path,
    start: date,
    days: int,
    scale: float = 1.0,
    seed: int = 42,
    domains: list[str] | None = None,
    progress: bool = False,
    defect_rate: float = DEFAULT_DEFECT_RATE,
    params: dict[str, object] | None = None,
    workers: int | None = None,
    feeds: list[str] | None = None,
    scales: dict[str, float] | None = None,
) -> dict[str, int]:
    """Write `days` days of exports from `start` for the feeds of `domains` (default: all).

    `params` overrides a feed module's planted-effect parameters ({feed: module.Params(...)}).
    `workers` processes share the work (default: one per core); the bytes do not depend on it.
    `feeds` narrows the run to those feeds ("<domain>/<feed>") of the selected domains.
    `scales` gives some feeds their own scale ({feed: scale}); the others take `scale`. Feeds
    that describe the same world must share a scale (GTFS static and realtime, the Sergek
    cameras and their violations).
    Returns the records written per feed, e.g. {"safety/road_accidents": 21873}.
    """
    root = Path(root)
    modules = _select(feed_modules(), domains)
    if feeds is not None:
        if unknown := set(feeds) - set(modules):
            raise ValueError(f"unknown feed(s) {sorted(unknown)}; known: {sorted(modules)}")
        modules = {feed: m for feed, m in modules.items() if feed in feeds}
    rows = dict.fromkeys(modules, 0)
    # Work units: one feed over a stretch of days, so a feed's cache of recent days (late
    # records re-derive earlier days) stays warm; units run in parallel processes.
    units = [(feed, start + timedelta(days=first), min(CHUNK_DAYS, days - first))
             for feed in modules for first in range(0, days, CHUNK_DAYS)]  # fmt: skip
    scales = scales or {}
    if unknown := set(scales) - set(feed_modules()):
        raise ValueError(f"unknown feed(s) in scales: {sorted(unknown)}")
    common = {"root": root, "seed": seed, "defect_rate": defect_rate, "first_day": start}
    jobs = [(feed, first, n, {**common, "scale": scales.get(feed, scale)}, (params or {}).get(feed))
            for feed, first, n in units]
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    done = 0
    if workers == 1:
        results = map(_generate, jobs)
    else:
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        results = pool.map(_generate, jobs)
    try:
        for feed, written, last in results:
            rows[feed] += written
            done += 1
            if progress:
                _show_progress(done, len(jobs), f"{feed} to {last}")
    finally:
        if workers > 1:
            pool.shutdown(cancel_futures=True)
    end = start + timedelta(days=days - 1)
    run = {"start": start.isoformat(), "days": days, "end": end.isoformat(),
           "scale": scale, "seed": seed, "defect_rate": defect_rate}  # fmt: skip
    truths = {}
    for feed, module in modules.items():
        planted = Counter(d["kind"] for d in read_defects(root, feed)
                          if start.isoformat() <= d["file"].split("/")[2] <= end.isoformat())
        truths[feed] = {**module.ground_truth(*([params[feed]] if params and feed in params else [])),
                        "run": {**run, "scale": scales.get(feed, scale)}, "records": rows[feed],
                        "defects": {"log": f"simulator/defects/{feed}/<YYYY-MM-DD>.jsonl",
                                    "count_by_kind": dict(sorted(planted.items()))}}  # fmt: skip
    write_ground_truth(root, truths)
    return rows


def sergek_params(rollout: date) -> dict[str, object]:
    """The `params` that move the Sergek rollout in Astana, in every feed that depends on it:
    the accident register (the fall), the camera register (the installs) and the violations."""
    from qala_devkit.simulate import camera_registry, road_accidents, sergek_violations

    cameras = camera_registry.Params(sergek_rollout=rollout)
    return {road_accidents.FEED: road_accidents.Params(sergek_rollout=rollout),
            camera_registry.FEED: cameras,
            sergek_violations.FEED: sergek_violations.Params(cameras=cameras)}  # fmt: skip


def _generate(job: tuple) -> tuple[str, int, date]:
    """One work unit: `n` days of one feed from `first` (runs in a worker process)."""
    feed, first, n, common, params = job
    module = feed_modules()[feed]
    written = 0
    for i in range(n):
        ctx = DayContext(feed=feed, day=first + timedelta(days=i), params=params, **common)
        written += module.generate_day(ctx)
        write_defects(ctx)
    return feed, written, first + timedelta(days=n - 1)


def write_ground_truth(root: Path, truths: dict[str, dict]) -> Path:
    """Merge the feeds' ground truth into ground_truth.json: other feeds' entries stay."""
    path = simulator_dir(root) / "ground_truth.json"
    merged = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    merged.update(truths)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(merged, ensure_ascii=False, indent=2, sort_keys=True)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def _select(modules: dict[str, ModuleType], domains: list[str] | None) -> dict[str, ModuleType]:
    if domains is None:
        return modules
    known = {feed.split("/")[0] for feed in modules}
    unknown = set(domains) - known
    if unknown:
        raise ValueError(f"unknown domain(s) {sorted(unknown)}; known: {sorted(known)}")
    return {feed: m for feed, m in modules.items() if feed.split("/")[0] in domains}


def _show_progress(done: int, total: int, what: str, width: int = 30) -> None:
    if not sys.stderr.isatty() and done != total:
        return  # a log file gets the final line only
    filled = width * done // total
    bar = "#" * filled + "." * (width - filled)
    sys.stderr.write(f"\rsimulating [{bar}] {done}/{total} {what[:60]:60}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()
