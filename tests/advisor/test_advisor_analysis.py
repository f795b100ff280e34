"""The pipeline-analysis path: what the advisor reads from real pipelines (the breast cancer
example, a GPU-heavy pipeline, scheduled and untagged ones) and how it combines with, and
yields to, a team profile."""

from __future__ import annotations

from collections.abc import Callable

from stackwise.advisor import Advice, advise, analyse_pipeline
from stackwise.authoring import load_pipeline

Advise = Callable[..., Advice]


def test_example_pipeline_analysis(example_target: str) -> None:
    pipeline = load_pipeline(example_target)
    analysis = analyse_pipeline(pipeline)
    assert analysis.step_count == 6
    assert analysis.kinds == {"etl": 2, "features": 1, "training": 1, "evaluation": 1, "other": 1}
    steps = {s.name: s for s in analysis.steps}
    assert (steps["ingest"].kind, steps["ingest"].kind_from) == ("etl", "tag")
    assert steps["register"].kind is None  # tagged "registry": not a workflow kind
    assert analysis.gpu_steps == [] and analysis.images == 0
    assert (analysis.nodes, analysis.gpus_per_node) == (1, 0)
    inferred = {k: v.value for k, v in analysis.inferred.items()}
    assert inferred["workflow_mix"] == ["etl", "features", "training", "evaluation"]
    assert inferred["containerized_codebase"] is False
    scheduled = getattr(pipeline, "schedule", None) is not None
    assert inferred["backfill_historical_ranges"] is scheduled
    assert (analysis.schedule is not None) is scheduled


def test_example_pipeline_without_a_profile_gets_airflow_and_local(example_target: str) -> None:
    advice = advise(load_pipeline(example_target), None, origin="none")
    assert (advice.orchestrator.choice, advice.compute.choice) == ("airflow", "local")
    reasons = {r.criterion: r for r in advice.orchestrator.reasons}
    diverse = reasons["airflow.diverse_workflows"]
    assert diverse.triggered_by == "workflow_mix = [etl, features, training, evaluation] (pipeline)"
    assert reasons["airflow.runs_from_source"].triggered_by.endswith("(pipeline)")
    assert advice.inputs["workflow_mix"].source == "pipeline"
    assert "step kinds: etl x2" in (advice.inputs["workflow_mix"].note or "")
    assert advice.inputs["kubernetes_first"].source == "default"
    assert any("no team profile" in n for n in advice.notes)
    assert advice.warnings == []


def test_gpu_heavy_pipeline_analysis(gpu_target: str) -> None:
    analysis = analyse_pipeline(load_pipeline(gpu_target))
    steps = {s.name: s for s in analysis.steps}
    assert (steps["train"].nodes, steps["train"].gpus_per_node) == (4, 8)
    assert steps["evaluate_model"].kind == "evaluation"
    assert steps["evaluate_model"].kind_from == "name"
    assert analysis.gpu_steps == ["train", "evaluate_model"]
    assert analysis.largest_step == "train"
    assert (analysis.nodes, analysis.gpus_per_node, analysis.images) == (4, 8, 2)
    assert analysis.inferred["containerized_codebase"].value is True


def test_gpu_heavy_pipeline_without_a_profile(gpu_target: str) -> None:
    advice = advise(load_pipeline(gpu_target), None, origin="none")
    assert advice.orchestrator.choice == "kubeflow"
    assert advice.compute.choice == "kubernetes"
    compute = {r.criterion: r.triggered_by for r in advice.compute.reasons}
    assert compute["kubernetes.gpu_scheduling"] == (
        "distributed_training.nodes = 4 (pipeline); distributed_training.gpus_per_node = 8 "
        "(pipeline)"
    )
    assert compute["kubernetes.containerized"] == "containerized_codebase = true (pipeline)"
    assert compute["kubernetes.with_kubeflow"] == "orchestrator = kubeflow (decision)"
    ids = {w.id for w in advice.warnings}
    assert {"gpus_without_a_cluster", "kubeflow_without_kubernetes"} <= ids
    assert advice.iteration_cost is not None and advice.iteration_cost.minutes_per_day is None


def test_gpu_heavy_pipeline_with_a_kubernetes_team(gpu_target: str, advise_for: Advise) -> None:
    advice = advise_for(
        gpu_target,
        kubernetes_first=True,
        cluster_ops_expertise=True,
        platform_engineering_capacity="dedicated",
        image_build_minutes=4,
        code_changes_per_day=5,
    )
    assert (advice.orchestrator.choice, advice.compute.choice) == ("kubeflow", "kubernetes")
    assert advice.warnings == []
    assert advice.iteration_cost is not None and advice.iteration_cost.minutes_per_day == 20


def test_profile_wins_over_the_pipeline_and_the_report_says_so(
    gpu_target: str, advise_for: Advise
) -> None:
    advice = advise_for(gpu_target, distributed_training={"nodes": 1, "gpus_per_node": 1})
    assert advice.inputs["distributed_training.nodes"].value == 1
    assert advice.inputs["distributed_training.nodes"].source == "profile"
    assert advice.orchestrator.choice != "kubeflow"
    understated = [w.message for w in advice.warnings if w.id == "profile_understates_pipeline"]
    assert len(understated) == 2
    assert "distributed_training.nodes = 1 but the pipeline shows 4" in understated[0]
    # A profile that says more than this pipeline (other pipelines) is not a contradiction.
    broader = advise_for(gpu_target, workflow_mix=["etl", "training", "evaluation", "serving"])
    assert not [w for w in broader.warnings if w.id == "profile_understates_pipeline"]


def test_scheduled_pipeline_makes_backfills_count(write_pipeline: Callable[..., str]) -> None:
    target = write_pipeline(
        """
        import stackwise as sw

        @sw.step
        def ingest_events(day: str) -> int:
            return 1

        @sw.pipeline(schedule=sw.Schedule("@daily", start="2026-01-01"))
        def pipe(day: str = "2026-01-01"):
            ingest_events(day)
        """
    )
    advice = advise(load_pipeline(target), None, origin="none")
    assert advice.pipeline is not None and advice.pipeline.schedule is not None
    assert "0 0 * * *" in advice.pipeline.schedule
    assert advice.inputs["backfill_historical_ranges"].value is True
    assert advice.inputs["backfill_historical_ranges"].source == "pipeline"
    assert advice.orchestrator.choice == "airflow"
    assert "airflow.backfills" in {r.criterion for r in advice.orchestrator.reasons}


def test_untagged_steps_get_kinds_from_their_names_and_big_gpu_asks_spread(
    write_pipeline: Callable[..., str],
) -> None:
    target = write_pipeline(
        """
        import stackwise as sw

        @sw.step
        def load_raw(n: int) -> int:
            return n

        @sw.step
        def build_features(x: int) -> int:
            return x

        @sw.step(resources=sw.Resources(gpu=20))
        def finetune_model(x: int) -> int:
            return x

        @sw.step
        def publish(x: int) -> int:
            return x

        @sw.pipeline
        def pipe(n: int = 1):
            publish(finetune_model(build_features(load_raw(n))))
        """
    )
    analysis = analyse_pipeline(load_pipeline(target))
    kinds = {s.name: (s.kind, s.kind_from) for s in analysis.steps}
    assert kinds == {
        "load_raw": ("etl", "name"),
        "build_features": ("features", "name"),
        "finetune_model": ("training", "name"),
        "publish": (None, None),
    }
    # 20 GPUs do not fit one machine of 8: three nodes of (up to) 7.
    assert (analysis.nodes, analysis.gpus_per_node) == (3, 7)
    assert analysis.kinds["other"] == 1
