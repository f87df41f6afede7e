"""Airflow DAG ingest_transport — transport: GTFS static timetables, GTFS-Realtime trip updates, fare validations."""

from qala_dag_factory import ingest_dag

dag = ingest_dag("transport")
