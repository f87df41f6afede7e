"""Airflow DAG ingest_education — education: OneRoster school rosters, first-grade applications, the kindergarten queue."""

from qala_dag_factory import ingest_dag

dag = ingest_dag("education")
