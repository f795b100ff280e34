"""`stackwise dashboard`: one web page for a pipeline's whole life (runs on every orchestrator,
backfill grids, lineage, models and their promotions), read from the stores the CLI reads: the
run state store (with its interval ledger) and MLflow.

Optional: needs the `dashboard` extra (Starlette, Jinja2, uvicorn) and Graphviz's `dot`
program. Nothing here is imported by `import stackwise` or `stackwise --help`.
"""
