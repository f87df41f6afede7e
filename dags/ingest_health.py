"""Airflow DAG ingest_health — health: the clinics' FHIR R4 Bulk Data export."""

from qala_dag_factory import ingest_dag

dag = ingest_dag("health")
