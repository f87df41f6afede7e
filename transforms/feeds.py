"""A feed's story: every file and lake table that tells it, found by the one name a feed has in every
layer (`<domain>/<feed>` for contracts, landing folders and the simulator; `<domain>__<feed>` for
silver, quarantine, GX suites and dbt models). Nothing here is a hand-kept list: a new feed that
follows the naming rule shows up by itself, and one that does not is missing from its own story
(tests/test_feeds.py checks every feed's).

    qala feeds list
    qala feeds show safety/road_accidents
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from transforms import settings
from transforms.contract import all_feeds, load_contract
from transforms.readers import module_name

DEVKIT_SIMULATOR = settings.REPO_ROOT / "devkit" / "qala_devkit" / "simulate"


@dataclass(frozen=True)
class Chapter:
    """One part of a feed's story: what it is (`role`) and where (a repository path, a lake table
    or a warehouse folder)."""

    role: str
    where: str


def _repo(path: Path) -> str:
    return str(path.relative_to(settings.REPO_ROOT))


def _mentioning(folder: Path, patterns: tuple[str, ...], suffixes: tuple[str, ...]) -> list[Path]:
    """Files under folder (with one of the suffixes) whose name or text names the feed."""
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in suffixes):
        if any(p in path.name for p in patterns) or any(p in path.read_text(encoding="utf-8", errors="replace")
                                                       for p in patterns):
            found.append(path)
    return found


def story(feed: str, root: Path | None = None) -> list[Chapter]:
    """Every file and table that tells `<domain>/<feed>`'s story, from source to KPI."""
    contract = load_contract(feed)
    name = contract.table  # <domain>__<feed>
    root = root or settings.warehouse_root()
    chapters = [Chapter("contract", _repo(settings.CONTRACTS_DIR / f"{feed}.yaml"))]
    chapters += [Chapter("GX suite", _repo(table.suite_path)) for table in contract.tables]
    chapters.append(Chapter("reader", module_name(contract.format["type"]).replace(".", "/") + ".py"))
    chapters.append(Chapter("DAG", _repo(settings.REPO_ROOT / "dags" / f"ingest_{contract.domain}.py")))
    chapters.append(Chapter("landing folder", str(root / "landing" / feed)))
    for table in contract.tables:
        chapters += [Chapter("silver table", f"silver.{table.silver}"),
                     Chapter("quarantine table", f"quarantine.{table.silver}")]
    models = settings.DBT_PROJECT_DIR / "models"
    for layer in ("staging", "intermediate", "marts"):
        for path in _mentioning(models / layer, (name,), (".sql", ".yml", ".md")):
            kind = "model" if path.suffix == ".sql" else "docs and tests"
            chapters.append(Chapter(f"dbt {layer} {kind}", _repo(path)))
    for path in _mentioning(settings.REPO_ROOT / "tests", (feed, name), (".py",)):
        chapters.append(Chapter("tests", _repo(path)))
    simulator = DEVKIT_SIMULATOR / f"{contract.name}.py"
    if simulator.exists():
        chapters.append(Chapter("simulator", _repo(simulator)))
    chapters.append(Chapter("data dictionary", f"{_repo(settings.REPO_ROOT / 'docs' / 'silver_tables.md')}"
                                               f"#silver{name}"))
    return chapters


def catalogue() -> list[dict]:
    """One line per feed: its name, title, format and silver tables."""
    return [{"feed": feed, "title": (c := load_contract(feed)).title, "format": c.format["type"],
             "tables": [t.silver for t in c.tables]} for feed in all_feeds()]
