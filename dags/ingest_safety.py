"""Airflow DAG ingest_safety — public safety: the police road-accident register."""

from qala_dag_factory import ingest_dag

dag = ingest_dag("safety")
