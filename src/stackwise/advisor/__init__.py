"""The decision framework as code: which orchestrator, which compute backend (MLflow always),
for a given pipeline and team, with the reasons. `criteria.py` is the table; the rest reads it.
"""

from stackwise.advisor.advice import Advice, advise
from stackwise.advisor.analysis import PipelineAnalysis, analyse_pipeline
from stackwise.advisor.profile import TeamProfile, load_profile, parse_profile

__all__ = [
    "Advice",
    "PipelineAnalysis",
    "TeamProfile",
    "advise",
    "analyse_pipeline",
    "load_profile",
    "parse_profile",
]
