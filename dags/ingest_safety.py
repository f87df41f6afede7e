"""Airflow DAG ingest_safety — public safety: road accidents, Sergek cameras and their violations."""

from qala_dag_factory import ingest_dag

dag = ingest_dag("safety")
