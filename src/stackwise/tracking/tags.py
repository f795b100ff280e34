"""Every MLflow tag name stackwise writes or reads, in one place (the README's "What lands in
MLflow" is checked against this module by a test). Plain constants: importing this module
costs nothing and imports no MLflow.
"""

from __future__ import annotations

# -- MLflow's own system tags we set or read ------------------------------------------------
MLFLOW_RUN_NAME = "mlflow.runName"
MLFLOW_PARENT_RUN_ID = "mlflow.parentRunId"
MLFLOW_SOURCE_NAME = "mlflow.source.name"
MLFLOW_GIT_COMMIT = "mlflow.source.git.commit"
MLFLOW_DATASET_CONTEXT = "mlflow.data.context"  # on dataset inputs, not on runs

# -- every run of a pipeline run (the parent and each step's child carry these) -------------
PIPELINE = "stackwise.pipeline"
PIPELINE_VERSION = "stackwise.pipeline_version"
PIPELINE_REF = "stackwise.pipeline_ref"
RUN_ID = "stackwise.run_id"
RUN_KIND = "stackwise.run_kind"  # "pipeline" on the parent, "step" on a child
ORCHESTRATOR = "stackwise.orchestrator"
COMPUTE = "stackwise.compute"
GIT_DIRTY = "stackwise.git.dirty"
LOGICAL_DATE = "stackwise.logical_date"
DATA_INTERVAL_START = "stackwise.data_interval_start"
DATA_INTERVAL_END = "stackwise.data_interval_end"
BACKFILL_ID = "stackwise.backfill_id"
ENVIRONMENT = "stackwise.environment"  # runs:/<run>/stackwise/environment.json
ENVIRONMENT_DIGEST = "stackwise.environment.digest"
OWNER = "stackwise.owner"  # host/pid/start of the process that opened the run
STATUS = "stackwise.status"
REPRODUCES = "stackwise.reproduces"  # models:/NAME/VERSION a `stackwise reproduce` run remakes

# -- a step's child run ---------------------------------------------------------------------
STEP = "stackwise.step"
ATTEMPT = "stackwise.attempt"
ERROR = "stackwise.error"
CACHED = "stackwise.cached"
CACHED_FROM = "stackwise.cached_from"
CACHE_KEY = "stackwise.cache_key"
TRUNCATED_PARAMS = "stackwise.truncated_params"
INPUT_PREFIX = "stackwise.input."  # + input name: the artifact URL read
OUTPUT_PREFIX = "stackwise.output."  # + output name: URL; + ".digest": its sha256
WORLD_SIZE = "stackwise.world_size"  # a distributed step (workers > 1): its number of workers
#: Not a tag: the metric-key prefix of rank r > 0 of a distributed step (rank 0 keeps plain keys).
RANK_METRIC_PREFIX = "rank{rank}/"

# -- a pipeline run on Kubeflow Pipelines (parent and children) -----------------------------
KUBEFLOW_RUN_ID = "stackwise.kubeflow.run_id"  # the KFP run id

RUN_KIND_PIPELINE = "pipeline"
RUN_KIND_STEP = "step"

# -- Airflow (orchestrator-specific: ignored by conformance) ---------------------------------
AIRFLOW_DAG_ID = "stackwise.airflow.dag_id"
AIRFLOW_RUN_ID = "stackwise.airflow.run_id"

# -- model versions (governance) ------------------------------------------------------------
TRAINING_RUN_ID = "stackwise.training_run_id"
PIPELINE_RUN_ID = "stackwise.pipeline_run_id"
REGISTERED_IN_RUN_ID = "stackwise.registered_in_run_id"
GIT_COMMIT = "stackwise.git_commit"
DATASETS = "stackwise.datasets"

#: Tags whose presence or value depends on which orchestrator, host or process ran the
#: pipeline, ignored when the records of two orchestrators are compared (conformance).
#: A trailing "." matches every tag with that prefix.
ORCHESTRATOR_SPECIFIC = (
    ORCHESTRATOR,
    COMPUTE,
    OWNER,
    BACKFILL_ID,
    PIPELINE_REF,
    MLFLOW_SOURCE_NAME,
    "stackwise.airflow.",
    "stackwise.kubeflow.",
)


def is_orchestrator_specific(tag: str) -> bool:
    return any(tag.startswith(p) if p.endswith(".") else tag == p for p in ORCHESTRATOR_SPECIFIC)


def input_tag(name: str) -> str:
    return INPUT_PREFIX + name


def output_tag(name: str) -> str:
    return OUTPUT_PREFIX + name


def output_digest_tag(name: str) -> str:
    return OUTPUT_PREFIX + name + ".digest"
