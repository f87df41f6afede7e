"""Connection arguments for the embedded Airflow's SQLite metadata database.

airflow.cfg points `[database] sql_alchemy_connect_args` here. Three Airflow processes (API
server, scheduler, DAG processor) and the task processes share one SQLite file; Python's
default 5 s lock wait is too short on a busy two-core machine, and a request that hits
"database is locked" becomes an HTTP 500 from the API server. A longer wait is no cure where
the waiter is the API server's event loop: the holder may need that loop to commit, so both wait
out the timeout (dags/airflow_local_settings.py and airflow.cfg's pool setting keep the loop from
waiting). Kept free of imports: every Airflow process imports this module.
"""

SYNC = {"timeout": 60}
ASYNC = {"timeout": 60}
