"""Scenario by scenario through the decision framework, with profiles only (the pipeline path
is in test_advisor_analysis.py): each of the seed's conditions alone, combinations,
contradictions, and borderline profiles on either side of each threshold and tie."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from stackwise.advisor import Advice
from stackwise.advisor.advice import Decision

Advise = Callable[..., Advice]


def _reasons(decision: Decision) -> dict[str, int]:
    return {r.criterion: r.weight for r in decision.reasons}


def _warnings(advice: Advice) -> set[str]:
    return {w.id for w in advice.warnings}


# -- nothing said ----------------------------------------------------------------------------
def test_empty_profile_keeps_everything_local_and_says_why(advise_for: Advise) -> None:
    advice = advise_for()
    assert (advice.orchestrator.choice, advice.compute.choice, advice.tracker) == (
        "local",
        "local",
        "mlflow",
    )
    assert _reasons(advice.orchestrator) == {"local.embedded": 3}
    assert _reasons(advice.compute) == {"local.single_machine": 3}
    assert advice.warnings == []
    assert advice.iteration_cost is None
    assert {v.source for v in advice.inputs.values()} == {"default", "derived"}
    # The strongest single reasons for a server are the nearest flips.
    assert advice.orchestrator.flip is not None
    assert advice.orchestrator.flip.to in ("airflow", "kubeflow")
    assert advice.compute.flip is not None and advice.compute.flip.to == "ray"


# -- each seed condition alone ----------------------------------------------------------------
def test_backfills_alone_choose_airflow(advise_for: Advise) -> None:
    advice = advise_for(backfill_historical_ranges=True)
    orch = advice.orchestrator
    assert orch.choice == "airflow" and orch.runner_up == "local"
    assert orch.scores == {"local": 3, "airflow": 4, "kubeflow": 0}
    (reason,) = [r for r in orch.reasons if r.favours == "airflow"]
    assert reason.criterion == "airflow.backfills"
    assert reason.triggered_by == "backfill_historical_ranges = true (profile)"
    assert "backfilling historical date ranges" in reason.quote
    assert orch.flip is not None
    assert orch.flip.change == "backfill_historical_ranges: true -> false"
    assert orch.flip.to == "local"
    assert advice.compute.choice == "local"


def test_diverse_workflows_alone_tie_with_local_and_the_simpler_option_wins(
    advise_for: Advise,
) -> None:
    orch = advise_for(workflow_mix=["etl", "features", "training"]).orchestrator
    assert orch.scores["airflow"] == orch.scores["local"] == 3
    assert orch.tie and orch.choice == "local" and orch.runner_up == "airflow"
    assert "airflow.diverse_workflows" in _reasons(orch)
    assert orch.flip is not None and orch.flip.to == "airflow"


def test_diverse_workflows_need_etl_next_to_ml(advise_for: Advise) -> None:
    orch = advise_for(workflow_mix=["training", "evaluation", "serving"]).orchestrator
    assert "airflow.diverse_workflows" not in _reasons(orch)


def test_a_non_containerized_codebase_alone_is_a_weak_airflow_reason(advise_for: Advise) -> None:
    orch = advise_for(containerized_codebase=False).orchestrator
    assert _reasons(orch) == {"local.embedded": 3, "airflow.runs_from_source": 1}
    assert orch.choice == "local"


def test_slow_image_builds_count_from_sixty_minutes_a_day(advise_for: Advise) -> None:
    below = advise_for(image_build_minutes=59, code_changes_per_day=1)
    at = advise_for(image_build_minutes=10, code_changes_per_day=6)
    assert "airflow.image_build_drag" not in _reasons(below.orchestrator)
    assert _reasons(at.orchestrator)["airflow.image_build_drag"] == 2
    assert _reasons(at.compute)["ray.image_build_drag"] == 1
    assert at.inputs["daily_image_build_minutes"].value == 60
    assert at.inputs["daily_image_build_minutes"].source == "derived"
    assert at.iteration_cost is not None and at.iteration_cost.minutes_per_day == 60
    assert "10 min per build x 6 changes a day = 60 minutes" in at.iteration_cost.note
    # Alone it is not enough to run Airflow.
    assert at.orchestrator.choice == "local"


def test_image_minutes_without_change_rate_are_shown_as_unknown(advise_for: Advise) -> None:
    advice = advise_for(image_build_minutes=12)
    assert advice.inputs["daily_image_build_minutes"].value is None
    assert advice.iteration_cost is not None
    assert advice.iteration_cost.minutes_per_day is None
    assert "code_changes_per_day" in advice.iteration_cost.note


def test_integrations_count_from_three(advise_for: Advise) -> None:
    two = advise_for(integrations=["postgres", "s3"]).orchestrator
    three = advise_for(integrations=["postgres", "s3", "datadog"]).orchestrator
    assert "airflow.integrations" not in _reasons(two)
    assert _reasons(three)["airflow.integrations"] == 2
    assert three.choice == "local"  # 2 < 3: one more reason needed


def test_kubernetes_first_alone_is_not_enough_for_kubeflow(advise_for: Advise) -> None:
    advice = advise_for(kubernetes_first=True)
    assert advice.orchestrator.choice == "local"
    assert _reasons(advice.orchestrator)["kubeflow.kubernetes_first"] == 2
    assert _reasons(advice.compute)["kubernetes.kubernetes_first"] == 2
    assert advice.compute.choice == "local"


def test_multi_tenancy_alone_chooses_kubeflow_on_kubernetes_and_warns(
    advise_for: Advise,
) -> None:
    advice = advise_for(multi_tenancy_required=True)
    assert advice.orchestrator.choice == "kubeflow"
    assert advice.compute.choice == "kubernetes"
    assert _reasons(advice.compute) == {
        "local.single_machine": 3,
        "kubernetes.multi_tenancy": 3,
        "kubernetes.with_kubeflow": 1,
    }
    assert {
        "multi_tenancy_without_platform",
        "kubeflow_without_kubernetes",
        "kubeflow_without_platform",
    } <= _warnings(advice)


def test_multi_node_gpu_training_alone_moves_compute_not_the_orchestrator(
    advise_for: Advise,
) -> None:
    # Issue 20: a compute need alone used to carry the orchestrator to Kubeflow (4 > 3).
    advice = advise_for(distributed_training={"nodes": 4, "gpus_per_node": 8})
    assert advice.orchestrator.choice == "local"
    assert "kubeflow.distributed_gpus" not in _reasons(advice.orchestrator)
    # Ray (horizontal scaling) over Kubernetes (GPU scheduling, but no cluster to share).
    assert advice.compute.scores == {"local": 3, "ray": 4, "kubernetes": 3}
    assert advice.compute.choice == "ray" and not advice.compute.tie
    (gpu_warning,) = [w for w in advice.warnings if w.id == "gpus_without_a_cluster"]
    assert "4 nodes x 8 GPUs" in gpu_warning.message


def test_multi_node_cpu_training_scales_out_on_ray(advise_for: Advise) -> None:
    advice = advise_for(distributed_training={"nodes": 6, "gpus_per_node": 0})
    assert advice.orchestrator.choice == "local"
    assert advice.compute.choice == "ray"
    assert "kubernetes.gpu_scheduling" not in _reasons(advice.compute)


def test_single_node_gpus_stay_local(advise_for: Advise) -> None:
    advice = advise_for(distributed_training={"nodes": 1, "gpus_per_node": 8})
    assert (advice.orchestrator.choice, advice.compute.choice) == ("local", "local")


@pytest.mark.parametrize(("capacity", "weight"), [("none", None), ("some", 1), ("dedicated", 2)])
def test_platform_capacity_levels(advise_for: Advise, capacity: str, weight: int | None) -> None:
    reasons = _reasons(advise_for(platform_engineering_capacity=capacity).orchestrator)
    found = reasons.get("kubeflow.platform_some") or reasons.get("kubeflow.platform_dedicated")
    assert found == weight


@pytest.mark.parametrize(
    ("cost", "expected"),
    [
        ("low", {"local": 3, "ray": 0, "kubernetes": 1}),
        ("medium", {"local": 3, "ray": 0, "kubernetes": 0}),
        ("high", {"local": 4, "ray": 1, "kubernetes": 0}),
    ],
)
def test_cost_sensitivity_moves_compute_scores(
    advise_for: Advise, cost: str, expected: dict[str, int]
) -> None:
    assert advise_for(cost_sensitivity=cost).compute.scores == expected


def test_autoscaling_alone_is_one_point_each_for_the_cluster_options(advise_for: Advise) -> None:
    advice = advise_for(autoscaling=True)
    assert advice.compute.scores == {"local": 3, "ray": 1, "kubernetes": 1}
    # A compute need: it counts for Kubeflow only with a Kubernetes-side condition.
    assert "kubeflow.autoscaling" not in _reasons(advice.orchestrator)
    k8s = advise_for(autoscaling=True, kubernetes_first=True)
    assert _reasons(k8s.orchestrator)["kubeflow.autoscaling"] == 1


# -- combinations -----------------------------------------------------------------------------
def test_classic_data_team_gets_airflow_with_every_reason_listed(advise_for: Advise) -> None:
    advice = advise_for(
        workflow_mix=["etl", "features", "training", "evaluation"],
        backfill_historical_ranges=True,
        integrations=["postgres", "bigquery", "s3", "datadog"],
        containerized_codebase=False,
    )
    orch = advice.orchestrator
    assert orch.choice == "airflow"
    assert orch.scores["airflow"] == 3 + 4 + 2 + 1
    assert set(_reasons(orch)) == {
        "local.embedded",
        "airflow.diverse_workflows",
        "airflow.backfills",
        "airflow.integrations",
        "airflow.runs_from_source",
    }
    assert advice.compute.choice == "local"
    assert advice.warnings == []
    # 10 vs 3: no single change is enough; dropping the two strongest reasons ties at 3.
    assert orch.flip is not None and orch.flip.to == "local"
    assert sorted(orch.flip.change.split("; ")) == [
        "backfill_historical_ranges: true -> false",
        "workflow_mix: drop etl",
    ]


def test_far_from_the_edge_no_small_change_flips(advise_for: Advise) -> None:
    advice = advise_for(
        workflow_mix=["etl", "features", "training"],
        backfill_historical_ranges=True,
        integrations=["postgres", "s3", "datadog"],
        containerized_codebase=False,
        image_build_minutes=10,
        code_changes_per_day=12,
    )
    orch = advice.orchestrator
    assert orch.scores["airflow"] == 12
    assert orch.flip is None and orch.other_flips == []


def test_kubernetes_platform_org_gets_kubeflow_on_kubernetes_without_warnings(
    advise_for: Advise,
) -> None:
    advice = advise_for(
        kubernetes_first=True,
        cluster_ops_expertise=True,
        platform_engineering_capacity="dedicated",
        containerized_codebase=True,
        multi_tenancy_required=True,
        distributed_training={"nodes": 16, "gpus_per_node": 8},
        autoscaling=True,
        cost_sensitivity="low",
    )
    assert advice.orchestrator.choice == "kubeflow"
    assert advice.orchestrator.scores["kubeflow"] == 2 + 1 + 2 + 4 + 1 + 4
    assert advice.compute.choice == "kubernetes"
    assert advice.warnings == []
    assert advice.iteration_cost is not None  # containers are involved, build time unknown


def test_airflow_and_kubeflow_at_equal_strength_tie_toward_airflow(advise_for: Advise) -> None:
    advice = advise_for(
        workflow_mix=["etl", "training"],
        backfill_historical_ranges=True,
        distributed_training={"nodes": 2, "gpus_per_node": 4},
        kubernetes_first=True,
        cluster_ops_expertise=True,
    )
    orch = advice.orchestrator
    assert orch.scores["airflow"] == orch.scores["kubeflow"] == 7
    assert orch.choice == "airflow" and orch.runner_up == "kubeflow" and orch.tie
    assert orch.flip is not None and orch.flip.to == "kubeflow"


# -- contradictions -----------------------------------------------------------------------------
def test_multi_tenancy_warning_depends_on_platform_capacity(advise_for: Advise) -> None:
    without = advise_for(multi_tenancy_required=True, platform_engineering_capacity="none")
    some = advise_for(multi_tenancy_required=True, platform_engineering_capacity="some")
    assert "multi_tenancy_without_platform" in _warnings(without)
    assert "multi_tenancy_without_platform" not in _warnings(some)


def test_gpu_warning_goes_away_with_cluster_expertise(advise_for: Advise) -> None:
    gpus = {"nodes": 8, "gpus_per_node": 8}
    assert "gpus_without_a_cluster" in _warnings(advise_for(distributed_training=gpus))
    assert "gpus_without_a_cluster" not in _warnings(
        advise_for(distributed_training=gpus, cluster_ops_expertise=True)
    )


def test_backfills_outvoted_by_kubeflow_reasons_are_flagged(advise_for: Advise) -> None:
    advice = advise_for(
        backfill_historical_ranges=True, multi_tenancy_required=True, kubernetes_first=True
    )
    assert advice.orchestrator.choice == "kubeflow"
    assert "backfills_on_kubeflow" in _warnings(advice)


def test_slow_images_and_missing_containers_under_kubeflow(advise_for: Advise) -> None:
    advice = advise_for(
        multi_tenancy_required=True,
        platform_engineering_capacity="dedicated",
        containerized_codebase=False,
        image_build_minutes=15,
        code_changes_per_day=8,
    )
    assert advice.orchestrator.choice == "kubeflow"
    warnings = {w.id: w.message for w in advice.warnings}
    assert "120 minutes a day (15 min x 8 changes)" in warnings["slow_image_builds"]
    assert "images_without_containers" in warnings
    assert advice.iteration_cost is not None and advice.iteration_cost.minutes_per_day == 120


def test_multi_tenancy_on_ray_is_flagged(advise_for: Advise) -> None:
    advice = advise_for(
        multi_tenancy_required=True,
        distributed_training={"nodes": 4, "gpus_per_node": 0},
        cost_sensitivity="high",
    )
    assert advice.compute.choice == "ray"
    (message,) = [w.message for w in advice.warnings if w.id == "multi_tenancy_on_shared_compute"]
    assert "ray compute backend does not isolate tenants" in message


def test_standing_cluster_under_high_cost_sensitivity(advise_for: Advise) -> None:
    advice = advise_for(
        kubernetes_first=True,
        cluster_ops_expertise=True,
        multi_tenancy_required=True,
        cost_sensitivity="high",
    )
    assert advice.compute.choice == "kubernetes"
    assert "standing_cluster_cost" in _warnings(advice)


# -- borderline: one step either side flips ----------------------------------------------------
@pytest.mark.parametrize(
    ("training", "orchestrator"),
    [
        ({"nodes": 1, "gpus_per_node": 8}, "local"),
        ({"nodes": 2, "gpus_per_node": 1}, "kubeflow"),
        ({"nodes": 2, "gpus_per_node": 0}, "local"),
    ],
)
def test_multi_node_gpu_thresholds(
    advise_for: Advise, training: dict[str, int], orchestrator: str
) -> None:
    # On a Kubernetes-first team, where the GPU need counts for Kubeflow at all.
    advice = advise_for(distributed_training=training, kubernetes_first=True)
    assert advice.orchestrator.choice == orchestrator


def test_one_point_over_the_edge_and_its_flip(advise_for: Advise) -> None:
    """Diverse workflows (3) + non-containerized code (1) beat local (3) by one; the flip the
    report names is exactly the change that undoes that point."""
    advice = advise_for(workflow_mix=["etl", "features"], containerized_codebase=False)
    orch = advice.orchestrator
    assert (orch.choice, orch.margin) == ("airflow", 1)
    assert orch.flip is not None
    assert orch.flip.change == "containerized_codebase: false -> true"
    assert orch.flip.scores == {"local": 3, "airflow": 3, "kubeflow": 0}
    flipped = advise_for(workflow_mix=["etl", "features"], containerized_codebase=True)
    assert flipped.orchestrator.choice == orch.flip.to == "local"


def test_flip_for_a_count_threshold_adds_names(advise_for: Advise) -> None:
    advice = advise_for(workflow_mix=["etl", "training"], integrations=["postgres"])
    changes = [f.change for f in [advice.orchestrator.flip, *advice.orchestrator.other_flips] if f]
    assert "integrations: 3 names instead of 1" in changes


def test_two_changes_when_one_is_not_enough(advise_for: Advise) -> None:
    advice = advise_for(
        backfill_historical_ranges=True, workflow_mix=["etl", "training"], integrations=[]
    )
    # airflow 7 vs local 3: dropping backfills alone leaves 3 vs 3 -> local (one change).
    assert advice.orchestrator.flip is not None
    assert advice.orchestrator.flip.change == "backfill_historical_ranges: true -> false"
    strong = advise_for(
        backfill_historical_ranges=True,
        workflow_mix=["etl", "training"],
        containerized_codebase=False,
    )
    flip = strong.orchestrator.flip
    assert flip is not None and "; " in flip.change  # 8 vs 3 needs two changes
    assert flip.to == "local"
