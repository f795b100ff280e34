"""The comparison the adapters' conformance tests rely on finds each kind of difference."""

import dataclasses

from stackwise.conformance import RunSnapshot, StepSnapshot, compare


def _step(**change: object) -> StepSnapshot:
    base = StepSnapshot(
        name="train", status="SUCCEEDED", cached=False, params={"lr": "0.1"},
        metric_keys=frozenset({"loss"}), artifacts=frozenset({"stackwise/logs/x.txt"}),
        tag_keys=frozenset({"stackwise.step", "stackwise.run_id"}),
        datasets=frozenset({("load.output", "abc", "input")}), parent_ok=True,
    )  # fmt: skip
    return dataclasses.replace(base, **change)  # type: ignore[arg-type]


def _run(**change: object) -> RunSnapshot:
    base = RunSnapshot(
        parent_run_id="p", pipeline="pipe", params={"lr": "0.1"},
        tag_keys=frozenset({"stackwise.pipeline"}), artifacts=frozenset(),
        steps={"train": _step()}, attempts={"train": 1},
        model_versions={"m": frozenset({"stackwise.training_run_id"})},
    )  # fmt: skip
    return dataclasses.replace(base, **change)  # type: ignore[arg-type]


def test_identical_records_conform() -> None:
    assert compare(_run(), _run(parent_run_id="other", attempts={"train": 3})) == []


def test_each_kind_of_difference_is_named() -> None:
    cases = {
        "pipeline run params 'lr'": _run(params={"lr": "0.2"}),
        "steps missing: train": _run(steps={}),
        "step 'train' params 'lr'": _run(steps={"train": _step(params={"lr": "9"})}),
        "step 'train' metric keys missing: loss": _run(
            steps={"train": _step(metric_keys=frozenset())}
        ),
        "step 'train' tag keys unexpected: extra": _run(
            steps={"train": _step(tag_keys=frozenset({"stackwise.step", "stackwise.run_id",
                                                       "extra"}))}  # fmt: skip
        ),
        "step 'train' dataset inputs": _run(
            steps={"train": _step(datasets=frozenset({("load.output", "zzz", "input")}))}
        ),
        "step 'train' artifacts missing": _run(steps={"train": _step(artifacts=frozenset())}),
        "step 'train' is a child of its pipeline run": _run(
            steps={"train": _step(parent_ok=False)}
        ),
        "model 'm' version tag keys missing": _run(model_versions={"m": frozenset()}),
        "registered models missing: m": _run(model_versions={}),
    }
    for expected, actual in cases.items():
        lines = compare(_run(), actual)
        assert any(line.startswith(expected) for line in lines), (expected, lines)
