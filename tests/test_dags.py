"""DAG integrity: every DAG file imports without error and parses in well under a second."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from transforms import settings
from transforms.contract import DOMAINS, feeds_of_domain, load_contract
from transforms.orchestrate import airflow_env

DAGS = settings.REPO_ROOT / "dags"
# What the DAG processor skips (.airflowignore: the DAG factory, Airflow's local settings) is no DAG file.
NOT_DAGS = set((DAGS / ".airflowignore").read_text().split())
DAG_FILES = sorted(p for p in DAGS.glob("*.py") if p.name not in NOT_DAGS)

PARSE = """
import json, sys
from pathlib import Path
from airflow.dag_processing.dagbag import BundleDagBag
bag = BundleDagBag(dag_folder=sys.argv[1], bundle_path=Path(sys.argv[2]))
print(json.dumps({"errors": {k: str(v) for k, v in bag.import_errors.items()},
                  "dags": {d.dag_id: sorted(t.task_id for t in d.tasks) for d in bag.dags.values()},
                  "weights": {t.task_id: t.priority_weight for d in bag.dags.values() for t in d.tasks},
                  "seconds": sum(s.duration.total_seconds() for s in bag.dagbag_stats)}))
"""


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=[p.stem for p in DAG_FILES])
def test_every_dag_file_imports_and_parses_in_well_under_a_second(dag_file, tmp_path):
    env = airflow_env(tmp_path)
    out = subprocess.run([sys.executable, "-c", PARSE, str(dag_file), str(DAGS)], env=env,
                         capture_output=True, text=True, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["errors"] == {}
    assert list(report["dags"]) == [dag_file.stem]
    assert report["seconds"] < 1.0, f"{dag_file.name} took {report['seconds']:.2f} s to parse"


@pytest.mark.parametrize("domain", DOMAINS)
def test_each_domain_has_an_ingest_dag_built_from_its_contracts(domain, tmp_path):
    out = subprocess.run([sys.executable, "-c", PARSE, str(DAGS / f"ingest_{domain}.py"), str(DAGS)],
                         env=airflow_env(tmp_path), capture_output=True, text=True, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    tasks = report["dags"][f"ingest_{domain}"]
    feeds = [feed.split("/")[1] for feed in feeds_of_domain(domain)]
    assert feeds, f"no contract in transforms/contracts/{domain}/"
    assert tasks == sorted(f"{feed}.{task}" for feed in feeds
                           for task in ("announce", "check", "find_landed_files", "load"))
    # The executor's slots go to the costliest loads first: each load task weighs what its
    # contract says (find_landed_files inherits it through the "downstream" weight rule).
    for feed in feeds_of_domain(domain):
        contract = load_contract(feed)
        assert report["weights"][f"{contract.name}.load"] == contract.load_weight


def test_dag_files_hold_no_pipeline_logic():
    """DAG files only wire: no SQL, no parsing, nothing heavy imported at the top level."""
    for path in DAGS.glob("*.py"):
        text = path.read_text()
        for heavy in ("import great_expectations", "import polars", "import duckdb", "import dbt"):
            assert heavy not in text.split("def ")[0], f"{path.name} imports {heavy} at top level"
