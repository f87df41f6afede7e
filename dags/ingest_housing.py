"""Airflow DAG ingest_housing — housing & communal services: street lighting, utility payments, Open311 service requests."""

from qala_dag_factory import ingest_dag

dag = ingest_dag("housing")
