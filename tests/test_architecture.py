"""The direction of the code base, checked on its source: the product (`transforms/`, `dags/`) never
imports the devkit (simulator, bench, gate audit), `transforms/` never imports Airflow (DAG files
wire it), and the product wheel ships `transforms` alone. Imports are read with `ast`, so a lazy
import inside a function counts as much as one at the top of a module."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def imports(folder: Path) -> list[tuple[str, int, str]]:
    """(file, line, imported module) for every import statement of every module under folder."""
    found = []
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                found += [(str(path.relative_to(REPO)), node.lineno, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.append((str(path.relative_to(REPO)), node.lineno, node.module))
    return found


def offending(folder: str, package: str) -> list[str]:
    return [f"{file}:{line} imports {module}" for file, line, module in imports(REPO / folder)
            if module == package or module.startswith(package + ".")]


def test_the_product_never_imports_the_devkit():
    assert offending("transforms", "qala_devkit") + offending("dags", "qala_devkit") == []


def test_transforms_never_imports_airflow():
    assert offending("transforms", "airflow") == []


def test_the_checks_see_imports_where_they_are(tmp_path):
    """The scan finds a lazy import inside a function and a `from` import (the two ways it could
    be written), so an empty result above means none, not a blind scan."""
    module = REPO / "transforms" / "_architecture_probe.py"
    module.write_text("def f():\n    import airflow.sdk\n    from qala_devkit.simulate import simulate\n")
    try:
        assert offending("transforms", "airflow") == ["transforms/_architecture_probe.py:2 imports airflow.sdk"]
        assert offending("transforms", "qala_devkit") == [
            "transforms/_architecture_probe.py:3 imports qala_devkit.simulate"]
    finally:
        module.unlink()


def test_the_product_wheel_ships_transforms_alone_and_the_devkit_its_own():
    product = tomllib.loads((REPO / "pyproject.toml").read_text())
    devkit = tomllib.loads((REPO / "devkit" / "pyproject.toml").read_text())
    assert product["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["transforms"]
    assert devkit["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["qala_devkit"]
    assert not any(d.startswith("polars") for d in product["project"]["dependencies"]), \
        "polars is the simulator's: it belongs to devkit/pyproject.toml"


def test_the_load_path_and_the_cli_load_neither_the_devkit_nor_polars():
    code = ("import sys, transforms.load, transforms.cli, transforms.jobs; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('qala_devkit', 'polars', 'airflow')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"
