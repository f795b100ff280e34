"""Apache Airflow 3 as a stackwise target.

- `settings`: the stack's `airflow:` section (where the DAGs folder and the API are).
- `compile`: pipeline -> `DagSpec` (plain data) -> `<dag_id>.stackwise.json` + a fixed DAG file.
- `dag`: what the fixed DAG file calls: builds the `airflow.sdk.DAG` from the spec.
- `task`: what runs inside an Airflow task: one step through `stackwise.runner.run_step`, or
  closing the pipeline run's MLflow parent.
- `client`: Airflow's REST API v2.
- `target`: `AirflowTarget`, the `Target` protocol (validate, compile, deploy, trigger, status,
  backfill).
"""

__all__: list[str] = []  # import the modules by name; `dag` and `task` need Airflow
