"""Airflow DAG ingest_programme — programme delivery: public services, programme events, Alatau City projects and workforce."""

from qala_dag_factory import ingest_dag

dag = ingest_dag("programme")
