"""Authoring: `@step`, `@pipeline`, their options, the traced DAG and its validation."""

from stackwise.authoring.context import Interval, StepContext
from stackwise.authoring.loader import load_pipeline
from stackwise.authoring.pipeline import Binding, Pipeline, StepNode, pipeline
from stackwise.authoring.step import Resources, Retries, StepDefinition, StepOptions, step

__all__ = [
    "Binding",
    "Interval",
    "Pipeline",
    "Resources",
    "Retries",
    "StepContext",
    "StepDefinition",
    "StepNode",
    "StepOptions",
    "load_pipeline",
    "pipeline",
    "step",
]
