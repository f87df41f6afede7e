"""Airflow DAG build_kpis — the dbt project, run whenever a silver Asset changes."""

from qala_dag_factory import build_kpis_dag

dag = build_kpis_dag()
