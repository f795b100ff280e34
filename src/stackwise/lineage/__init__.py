"""Lineage from MLflow entities alone: which data, code, runs and pipeline runs a model version
came from (upstream), and everything built on a dataset (downstream), with renderers for
people (tree, HTML, DOT, Mermaid) and machines (JSON)."""

__all__ = ["graph", "index", "refs", "render"]
