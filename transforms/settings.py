"""Where things live: the repository and the warehouse a process works on.

Every path Qala uses is derived here, from `$QALA_WAREHOUSE` (default `./warehouse` under the
repository), so two warehouses (a test's temporary one and a user's) never share any state.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CONTRACTS_DIR = REPO_ROOT / "transforms" / "contracts"
EXPECTATIONS_DIR = REPO_ROOT / "expectations"
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
SEEDS_DIR = DBT_PROJECT_DIR / "seeds"

LOCAL_TZ = "Asia/Almaty"
LAKE_ALIAS = "qala"

# Landing holds raw personal data (IINs, names, plates) until the load pseudonymises it; the lake,
# the reports and state/ (secrets) hold the rest. Nothing Qala creates is for other local users:
# every Qala process runs with this umask (directories 0700, files 0600), and the warehouse's
# top-level directories are kept at 0700 (`private_dirs`).
PRIVATE_UMASK = 0o077


def private_files() -> int:
    """Give this process (and every process it starts) Qala's umask; returns the previous one.
    Called by Qala's entry points: the `qala` CLI (devkit commands included); the Airflow
    components get it from orchestrate's Popen, and their task processes (loads, dbt) from them."""
    return os.umask(PRIVATE_UMASK)


def warehouse_root() -> Path:
    return Path(os.environ.get("QALA_WAREHOUSE") or REPO_ROOT / "warehouse").resolve()


def landing_dir(domain: str, feed: str, day: date | None = None, root: Path | None = None) -> Path:
    base = (root or warehouse_root()) / "landing" / domain / feed
    return base / day.isoformat() if day else base


def label_of(path: Path, root: Path | None = None) -> str:
    """How the ledger names a landed file: its path under the warehouse (landing/<domain>/<feed>/<day>/<name>)."""
    root = (root or warehouse_root()).resolve()
    resolved = Path(path).parent.resolve() / Path(path).name  # a symbolic link is named as itself
    return str(resolved.relative_to(root)) if resolved.is_relative_to(root) else str(path)


def lake_dir(root: Path | None = None) -> Path:
    return (root or warehouse_root()) / "lake"


def reports_dir(root: Path | None = None) -> Path:
    return (root or warehouse_root()) / "reports"


def state_dir(root: Path | None = None) -> Path:
    return (root or warehouse_root()) / "state"


def simulator_dir(root: Path | None = None) -> Path:
    """Ground truth of the simulated world: outside landing/, never ingested."""
    return (root or warehouse_root()) / "simulator"


def private_dirs(root: Path | None = None) -> None:
    """Create the warehouse root and its top-level directories 0700, and take group and other
    permissions off them if they exist (a warehouse made before Qala did this). Not recursive:
    a directory that other users cannot enter hides everything below it, whatever the files' own
    modes, so a large old tree is not rewritten. A directory owned by another account (a shared
    mount point) is left as it is: chmod would fail there, and its owner set its mode."""
    root = root or warehouse_root()
    for path in (root, root / "landing", lake_dir(root), reports_dir(root), state_dir(root), simulator_dir(root)):
        if path != simulator_dir(root):  # the devkit's; made by `qala simulate` when it runs
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        elif not path.exists():
            continue
        status = path.stat()
        if status.st_uid == os.geteuid() and status.st_mode & 0o077:
            path.chmod(status.st_mode & 0o7700)


def write_atomic(path: Path, data: bytes | str) -> Path:
    """Write beside and rename into place, so a reader (a DuckDB shell reading attach.sql, a
    watcher picking up an export, a browser on the scorecard) sees the old file or the new one,
    never a truncated one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    partial.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    os.replace(partial, path)
    return path
