"""The criteria table: the seed's decision framework as data.

Each row favours one option with a weight when all its conditions hold (no conditions:
always), and quotes the sentence it comes from (`origin="seed"`: the decision framework;
`"stackwise"`: this project's README).
Scores are sums of weights; the highest wins, a tie goes to the option earlier in `OPTIONS`
(the one cheaper to run and to leave). The README's "Choosing a stack" section documents the
same rows; a test keeps the two in step.

How the weights were chosen: the embedded local options start at 3, so that one weak signal
(weight 1-3) does not justify operating a server or a cluster, while the seed's strongest
conditions carry 4 and win alone: backfills (Airflow), mandatory multi-tenancy (Kubeflow) and,
on the compute side, multi-node training (Ray).

Compute needs stay on the compute side, as the seed's pattern says ("choose orchestrator based
on workflow characteristics ..., choose compute backend based on scaling and cost
requirements"): multi-node GPU training and autoscaling always move the compute backend, and
count for Kubeflow only together with a Kubernetes-side condition (`_KUBERNETES_SIDE`: the
team is Kubernetes-first, operates clusters, must isolate tenants, has platform capacity or
ships images), because only then is the cluster Kubeflow needs one the team has or wants
anyway. Without one, the orchestrator follows the workflow and Ray takes the training.
"""

from __future__ import annotations

from stackwise.advisor.rules import AnyOf, Condition, Criterion, Op, WarningRule

#: Options per decision, simplest first: the tie-break order.
OPTIONS: dict[str, tuple[str, ...]] = {
    "orchestrator": ("local", "airflow", "kubeflow"),
    "compute": ("local", "ray", "kubernetes"),
}
TRACKER = "mlflow"
TRACKER_QUOTE = (
    "MLflow serves as the universal experiment tracker and model registry regardless of "
    "orchestration choice"
)
#: Minutes a day spent waiting for image builds before they "kill productivity": six of the
#: seed's "10 minute image build cycles".
IMAGE_DRAG_MINUTES = 60

_MULTI_NODE = Condition("distributed_training.nodes", "ge", 2)
_GPUS = Condition("distributed_training.gpus_per_node", "ge", 1)
_IMAGE_DRAG = Condition("daily_image_build_minutes", "ge", IMAGE_DRAG_MINUTES)
_NON_CONTAINERIZED = "non containerized or rapidly iterating codebases"
_TEN_MINUTE_BUILDS = "where 10 minute image build cycles kill productivity"
_K8S_FIRST = "already Kubernetes first with existing cluster operations expertise"
_GPU_HEAVY = "heavy distributed training workloads requiring GPU scheduling and autoscaling"
_TENANCY = "strict isolation and multi tenancy are mandatory for regulatory or security reasons"
_PLATFORM = "you can invest platform engineering resources into managing image lifecycles"
_SCALE_AND_COST = "choose compute backend based on scaling and cost requirements"


def _c(fact: str, op: Op, value: object = None) -> Condition:
    return Condition(fact, op, value)


#: The seed's Kubeflow case minus its compute needs: what makes running a cluster the team's
#: own choice rather than the training's.
_KUBERNETES_SIDE = AnyOf(
    "a Kubernetes-side condition",
    (
        _c("kubernetes_first", "is", True),
        _c("cluster_ops_expertise", "is", True),
        _c("multi_tenancy_required", "is", True),
        _c("platform_engineering_capacity", "is", "some"),
        _c("platform_engineering_capacity", "is", "dedicated"),
        _c("containerized_codebase", "is", True),
    ),
)


ORCHESTRATOR_CRITERIA: tuple[Criterion, ...] = (
    Criterion("local.embedded", "local", 3, (),
              "nothing below asks for a scheduler service: the embedded orchestrator runs "
              "the pipeline with no server, and moving later stays cheap",
              "run it on the embedded local orchestrator (no server)", "stackwise"),
    Criterion("airflow.diverse_workflows", "airflow", 3,
              (_c("workflow_mix", "contains", "etl"),
               _c("workflow_mix", "contains_any", ["features", "training"])),
              "one scheduler for data and ML work: ETL next to features or training",
              "diverse data plus ML workflows spanning ETL, feature engineering, and training"),
    Criterion("airflow.backfills", "airflow", 4,
              (_c("backfill_historical_ranges", "is", True),),
              "rerunning past date ranges is a first-class Airflow operation",
              "strong requirements for backfilling historical date ranges"),
    Criterion("airflow.runs_from_source", "airflow", 1,
              (_c("containerized_codebase", "is", False),),
              "Airflow tasks run code from a checkout; no image per change",
              _NON_CONTAINERIZED),
    Criterion("airflow.image_build_drag", "airflow", 2, (_IMAGE_DRAG,),
              f"image builds cost {IMAGE_DRAG_MINUTES}+ minutes a day of waiting",
              _TEN_MINUTE_BUILDS),
    Criterion("airflow.integrations", "airflow", 2, (_c("integrations", "count_ge", 3),),
              "three or more systems to talk to: Airflow's provider packages cover them",
              "need for a large ecosystem of integrations with databases, cloud services, "
              "and monitoring tools"),
    Criterion("kubeflow.kubernetes_first", "kubeflow", 2,
              (_c("kubernetes_first", "is", True),),
              "the cluster Kubeflow needs is already how the organization runs", _K8S_FIRST),
    Criterion("kubeflow.cluster_ops", "kubeflow", 1, (_c("cluster_ops_expertise", "is", True),),
              "someone already operates clusters", _K8S_FIRST),
    Criterion("kubeflow.distributed_gpus", "kubeflow", 4, (_MULTI_NODE, _GPUS, _KUBERNETES_SIDE),
              "multi-node GPU jobs need GPU-aware scheduling across nodes, on a cluster the "
              "team runs or wants anyway", _GPU_HEAVY),
    Criterion("kubeflow.autoscaling", "kubeflow", 1,
              (_c("autoscaling", "is", True), _KUBERNETES_SIDE),
              "node pools that grow and shrink with the jobs, on the team's cluster", _GPU_HEAVY),
    Criterion("kubeflow.multi_tenancy", "kubeflow", 4,
              (_c("multi_tenancy_required", "is", True),),
              "namespaces, quotas and network policies isolate tenants", _TENANCY),
    Criterion("kubeflow.platform_dedicated", "kubeflow", 2,
              (_c("platform_engineering_capacity", "is", "dedicated"),),
              "a platform team can own images, node pools, quotas and observability", _PLATFORM),
    Criterion("kubeflow.platform_some", "kubeflow", 1,
              (_c("platform_engineering_capacity", "is", "some"),),
              "some platform capacity to own the cluster's moving parts", _PLATFORM),
)  # fmt: skip

COMPUTE_CRITERIA: tuple[Criterion, ...] = (
    Criterion("local.single_machine", "local", 3, (),
              "nothing asks to scale past one machine: steps run where the orchestrator runs",
              _SCALE_AND_COST),
    Criterion("local.cost_high", "local", 1, (_c("cost_sensitivity", "is", "high"),),
              "no standing cluster to pay for", _SCALE_AND_COST),
    Criterion("ray.multi_node", "ray", 4, (_MULTI_NODE,),
              "one job across several machines: Ray scales Python horizontally",
              "first class support for GPU scheduling, heterogeneous runtimes, and horizontal "
              "scaling"),
    Criterion("ray.autoscaling", "ray", 1, (_c("autoscaling", "is", True),),
              "Ray's autoscaler adds and removes workers with the load", _GPU_HEAVY),
    Criterion("ray.cost_high", "ray", 1, (_c("cost_sensitivity", "is", "high"),),
              "a Ray cluster can scale its workers to zero between jobs", _SCALE_AND_COST),
    Criterion("ray.image_build_drag", "ray", 1, (_IMAGE_DRAG,),
              "Ray ships working code in runtime environments, without an image per change",
              _TEN_MINUTE_BUILDS),
    Criterion("kubernetes.gpu_scheduling", "kubernetes", 3, (_MULTI_NODE, _GPUS),
              "GPU node pools and GPU-aware scheduling", _GPU_HEAVY),
    Criterion("kubernetes.kubernetes_first", "kubernetes", 2,
              (_c("kubernetes_first", "is", True),),
              "steps run as pods on the clusters the organization already runs", _K8S_FIRST),
    Criterion("kubernetes.cluster_ops", "kubernetes", 1,
              (_c("cluster_ops_expertise", "is", True),),
              "someone already operates clusters", _K8S_FIRST),
    Criterion("kubernetes.multi_tenancy", "kubernetes", 3,
              (_c("multi_tenancy_required", "is", True),),
              "pods in per-tenant namespaces with quotas isolate tenants; Ray workers do not",
              _TENANCY),
    Criterion("kubernetes.with_kubeflow", "kubernetes", 1,
              (_c("orchestrator", "is", "kubeflow"),),
              "Kubeflow already brings the cluster",
              "Kubeflow Pipelines and Kubernetes native orchestration"),
    Criterion("kubernetes.autoscaling", "kubernetes", 1, (_c("autoscaling", "is", True),),
              "the cluster autoscaler grows and shrinks node pools", _GPU_HEAVY),
    Criterion("kubernetes.platform_dedicated", "kubernetes", 1,
              (_c("platform_engineering_capacity", "is", "dedicated"),),
              "a platform team runs node pools and quotas", _PLATFORM),
    Criterion("kubernetes.containerized", "kubernetes", 1,
              (_c("containerized_codebase", "is", True),),
              "the images a pod needs already exist", _PLATFORM),
    Criterion("kubernetes.cost_low", "kubernetes", 1, (_c("cost_sensitivity", "is", "low"),),
              "a standing cluster with reserved node pools is affordable", _SCALE_AND_COST),
)  # fmt: skip

CRITERIA: dict[str, tuple[Criterion, ...]] = {
    "orchestrator": ORCHESTRATOR_CRITERIA,
    "compute": COMPUTE_CRITERIA,
}

WARNINGS: tuple[WarningRule, ...] = (
    WarningRule("multi_tenancy_without_platform",
                (_c("multi_tenancy_required", "is", True),
                 _c("platform_engineering_capacity", "is", "none")),
                "strict multi-tenancy is required but there is no platform engineering "
                "capacity: namespaces, quotas, network policies and access reviews need an "
                "owner. Budget for one, or isolate tenants with separate managed clusters."),
    WarningRule("multi_tenancy_on_shared_compute",
                (_c("multi_tenancy_required", "is", True), _c("compute", "in", ["local", "ray"])),
                "strict multi-tenancy is required but the {compute} compute backend does not "
                "isolate tenants from each other: run one backend per tenant."),
    WarningRule("gpus_without_a_cluster",
                (_MULTI_NODE, _GPUS, _c("kubernetes_first", "is", False),
                 _c("cluster_ops_expertise", "is", False)),
                "heavy multi-node GPU training ({nodes} nodes x {gpus_per_node} GPUs) but no "
                "Kubernetes and no one to run a Ray cluster: neither runs itself. Use a managed "
                "service (managed Kubernetes with GPU node pools, or hosted Ray) or staff "
                "cluster operations first."),
    WarningRule("kubeflow_without_kubernetes",
                (_c("orchestrator", "is", "kubeflow"), _c("kubernetes_first", "is", False)),
                "Kubeflow runs on Kubernetes, which the team does not run yet: standing up and "
                "operating the cluster is part of the cost of this choice."),
    WarningRule("kubeflow_without_platform",
                (_c("orchestrator", "is", "kubeflow"),
                 _c("platform_engineering_capacity", "is", "none")),
                "Kubeflow needs people for image lifecycles, node pools, quotas and "
                "observability; the profile has no platform engineering capacity."),
    WarningRule("backfills_on_kubeflow",
                (_c("orchestrator", "is", "kubeflow"),
                 _c("backfill_historical_ranges", "is", True)),
                "backfills are required but Kubeflow Pipelines has no backfill over past date "
                "ranges like Airflow's: each past interval becomes a run you trigger."),
    WarningRule("slow_image_builds",
                (_c("runs_in_images", "is", True), _IMAGE_DRAG),
                "every step runs from an image and builds cost {daily_image_build_minutes} "
                "minutes a day ({image_build_minutes} min x {code_changes_per_day} changes): "
                "cache layers, build in CI, or iterate locally before building."),
    WarningRule("images_without_containers",
                (_c("runs_in_images", "is", True), _c("containerized_codebase", "is", False)),
                "the recommended stack runs every step from a container image but the codebase "
                "is not containerized: write the images (and their CI builds) first."),
    WarningRule("standing_cluster_cost",
                (_c("compute", "is", "kubernetes"), _c("cost_sensitivity", "is", "high")),
                "cost sensitivity is high but a Kubernetes cluster costs while idle: let node "
                "pools scale to zero and use spot capacity for GPUs."),
)  # fmt: skip
