"""Compute needs stay on the compute side (issue 20, section 6).

The seed's pattern: "choose orchestrator based on workflow characteristics ..., choose compute
backend based on scaling and cost requirements". Multi-node GPU training and autoscaling are
scaling requirements: they move the compute backend (Ray scales one job across machines). They
count for Kubeflow only together with a Kubernetes-side condition of the seed's Kubeflow case
("already Kubernetes first with existing cluster operations expertise", "strict isolation and
multi tenancy", "platform engineering resources", images to run) because only then is the
cluster Kubeflow needs something the team has or wants anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stackwise.advisor import Advice
from stackwise.advisor.advice import Decision

Advise = Callable[..., Advice]

GPU_TRAINING = {"nodes": 4, "gpus_per_node": 8}
#: Not Kubernetes-first, no images, no isolation requirement (and nobody to run clusters).
PLAIN_TEAM: dict[str, Any] = {
    "kubernetes_first": False,
    "cluster_ops_expertise": False,
    "containerized_codebase": False,
    "multi_tenancy_required": False,
    "platform_engineering_capacity": "none",
}


def _reasons(decision: Decision) -> dict[str, str]:
    return {r.criterion: r.triggered_by for r in decision.reasons}


@pytest.mark.parametrize(
    ("workflow", "orchestrator"),
    [(["training", "evaluation"], "local"), (["etl", "features", "training"], "airflow")],
)
@pytest.mark.parametrize("autoscaling", [False, True])
def test_gpu_training_on_a_plain_team_keeps_the_orchestrator_and_scales_out_on_ray(
    advise_for: Advise, workflow: list[str], orchestrator: str, autoscaling: bool
) -> None:
    advice = advise_for(
        **PLAIN_TEAM,
        workflow_mix=workflow,
        distributed_training=GPU_TRAINING,
        autoscaling=autoscaling,
    )
    orch, compute = advice.orchestrator, advice.compute
    # The orchestrator follows the workflow: ETL next to training is Airflow's, else local.
    assert orch.choice == orchestrator
    assert orch.scores["kubeflow"] == 0
    assert not [c for c in _reasons(orch) if c.startswith("kubeflow.")]
    # The compute need moves the compute choice, and says so.
    assert compute.choice == "ray"
    assert _reasons(compute)["ray.multi_node"] == "distributed_training.nodes = 4 (profile)"
    assert compute.scores["ray"] == 4 + autoscaling
    assert compute.scores["kubernetes"] == 3 + autoscaling  # GPU node pools, no cluster yet
    assert "gpus_without_a_cluster" in {w.id for w in advice.warnings}
    # A Kubernetes-side change, not a compute one, is what would bring Kubeflow in.
    to_kubeflow = [f for f in [orch.flip, *orch.other_flips] if f and f.to == "kubeflow"]
    assert all("distributed_training" not in f.change for f in to_kubeflow)


@pytest.mark.parametrize("workflow", [["training", "evaluation"], ["etl", "features", "training"]])
def test_a_kubernetes_first_team_with_the_same_training_gets_kubeflow_on_kubernetes(
    advise_for: Advise, workflow: list[str]
) -> None:
    advice = advise_for(
        **{**PLAIN_TEAM, "kubernetes_first": True},
        workflow_mix=workflow,
        distributed_training=GPU_TRAINING,
    )
    assert (advice.orchestrator.choice, advice.compute.choice) == ("kubeflow", "kubernetes")
    reasons = _reasons(advice.orchestrator)
    assert reasons["kubeflow.distributed_gpus"] == (
        "distributed_training.nodes = 4 (profile); distributed_training.gpus_per_node = 8 "
        "(profile); kubernetes_first = true (profile)"
    )
    assert advice.orchestrator.scores["kubeflow"] == 2 + 4
    assert set(_reasons(advice.compute)) >= {
        "kubernetes.gpu_scheduling",
        "kubernetes.kubernetes_first",
        "kubernetes.with_kubeflow",
    }


@pytest.mark.parametrize(
    ("side", "shown"),
    [
        ({"kubernetes_first": True}, "kubernetes_first = true"),
        ({"cluster_ops_expertise": True}, "cluster_ops_expertise = true"),
        ({"multi_tenancy_required": True}, "multi_tenancy_required = true"),
        ({"platform_engineering_capacity": "some"}, "platform_engineering_capacity = some"),
        ({"platform_engineering_capacity": "dedicated"}, "platform_engineering_capacity = dedi"),
        ({"containerized_codebase": True}, "containerized_codebase = true"),
    ],
)
def test_each_kubernetes_side_condition_lets_the_gpu_need_count_for_kubeflow(
    advise_for: Advise, side: dict[str, Any], shown: str
) -> None:
    advice = advise_for(
        **{**PLAIN_TEAM, **side}, distributed_training=GPU_TRAINING, autoscaling=True
    )
    reasons = _reasons(advice.orchestrator)
    assert shown in reasons["kubeflow.distributed_gpus"]
    assert shown in reasons["kubeflow.autoscaling"]
    assert advice.orchestrator.choice == "kubeflow"


_PROFILES = st.fixed_dictionaries(
    {},
    optional={
        "workflow_mix": st.lists(
            st.sampled_from(["etl", "features", "training", "evaluation", "serving"]),
            unique=True,
        ),
        "backfill_historical_ranges": st.booleans(),
        "integrations": st.lists(st.sampled_from(["pg", "s3", "bq", "dd"]), unique=True),
        "image_build_minutes": st.sampled_from([2.0, 10.0]),
        "code_changes_per_day": st.sampled_from([1, 8]),
        "cost_sensitivity": st.sampled_from(["low", "medium", "high"]),
    },
)
_NEEDS = st.fixed_dictionaries(
    {
        "distributed_training": st.fixed_dictionaries(
            {"nodes": st.integers(1, 32), "gpus_per_node": st.integers(0, 8)}
        ),
        "autoscaling": st.booleans(),
    }
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(_PROFILES, _NEEDS)
def test_without_a_kubernetes_side_compute_needs_never_move_the_orchestrator(
    advise_for: Advise, profile: dict[str, Any], needs: dict[str, Any]
) -> None:
    without = advise_for(**PLAIN_TEAM, **profile)
    with_needs = advise_for(**PLAIN_TEAM, **profile, **needs)
    assert with_needs.orchestrator.choice == without.orchestrator.choice != "kubeflow"
    assert with_needs.orchestrator.scores == without.orchestrator.scores
