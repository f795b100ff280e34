"""The dashboard's web app: `create_app(config)` gives a Starlette app whose every page has a
JSON twin under `/api/` (the same data, so tests and scripts read what people see). Pages are
server-side Jinja2 templates with autoescape on; graphs are Graphviz SVG (graphs.py); the only
script is static/live.js, which polls a running run's JSON to recolour its steps.

Routes: /runs, /runs/{id}, /runs/{id}/steps/{step}/log, /pipelines, /pipelines/{name},
/backfills, /backfills/{id}, /lineage?ref=&direction=, /models, /models/{name}
(?version=&alias= adds the policy check), /api/models/{name}/check, POST
/api/models/{name}/actions (JSON) and /models/{name}/actions (form), both only with actions
allowed.
"""

from __future__ import annotations

import json
import secrets
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from stackwise.dashboard import backfills, lineage, models, pipelines, runs
from stackwise.dashboard.graphs import STATUS_COLORS
from stackwise.dashboard.security import Guard
from stackwise.dashboard.stores import Stores
from stackwise.errors import GovernanceError, PolicyViolation, RunNotFoundError, StackwiseError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from stackwise.config import StackConfig

HERE = Path(__file__).parent


class Dashboard:
    def __init__(self, stores: Stores, *, allow_actions: bool, form_key: str) -> None:
        import jinja2

        self.stores = stores
        self.allow_actions = allow_actions
        self.form_key = form_key
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
            undefined=jinja2.StrictUndefined,
        )  # fmt: skip
        env.filters["dur"] = _duration
        env.filters["short"] = lambda value, n=19: str(value or "")[:n]
        env.globals.update(status_colors=STATUS_COLORS, mlflow_ui=stores.mlflow_ui,
                           allow_actions=allow_actions, form_key=form_key)  # fmt: skip
        self.templates = Jinja2Templates(env=env)

    def page(self, request: Request, template: str, status: int = 200, **data: Any) -> Response:
        return self.templates.TemplateResponse(request, template, data, status_code=status)

    # -- runs ---------------------------------------------------------------------------------
    def runs_page(self, request: Request) -> Response:
        q = request.query_params
        flt = runs.RunFilter(pipeline=q.get("pipeline") or None, status=q.get("status") or None,
                             orchestrator=q.get("orchestrator") or None,
                             limit=_int(q.get("limit"), 100))  # fmt: skip
        found = runs.list_runs(self.stores, flt)
        if _api(request):
            return _json(found)
        return self.page(request, "runs.html", runs=found, flt=flt, statuses=list(STATUS_COLORS))

    def run_page(self, request: Request) -> Response:
        run = runs.get_run(self.stores, request.path_params["run_id"])
        if _api(request):
            return _json(run)
        svg, problem = pipelines.run_svg(self.stores, run)
        return self.page(request, "run.html", run=run, svg=svg, problem=problem,
                         live=run.status not in runs.TERMINAL)  # fmt: skip

    def step_log(self, request: Request) -> Response:
        p = request.path_params
        text = runs.step_log(self.stores, p["run_id"], p["step"])
        if text is None:
            return PlainTextResponse(f"step {p['step']!r} recorded no output.", status_code=404)
        return PlainTextResponse(text)

    # -- pipelines ----------------------------------------------------------------------------
    def pipelines_page(self, request: Request) -> Response:
        found = pipelines.list_pipelines(self.stores)
        if _api(request):
            return _json(found)
        return self.page(request, "pipelines.html", pipelines=found)

    def pipeline_page(self, request: Request) -> Response:
        view = pipelines.get_pipeline(self.stores, request.path_params["name"])
        if _api(request):
            return _json(view)
        recent = runs.list_runs(self.stores, runs.RunFilter(pipeline=view.name, limit=20))
        return self.page(request, "pipeline.html", p=view, svg=pipelines.pipeline_svg(view),
                         runs=recent)  # fmt: skip

    # -- backfills ----------------------------------------------------------------------------
    def backfills_page(self, request: Request) -> Response:
        found = backfills.list_backfills(self.stores)
        if _api(request):
            return _json(found)
        return self.page(request, "backfills.html", backfills=found)

    def backfill_page(self, request: Request) -> Response:
        grid = backfills.get_grid(self.stores, request.path_params["backfill_id"])
        if _api(request):
            return _json(grid)
        return self.page(request, "backfill.html", grid=grid)

    # -- lineage ------------------------------------------------------------------------------
    def lineage_page(self, request: Request) -> Response:
        ref = (request.query_params.get("ref") or "").strip()
        direction = request.query_params.get("direction") or None
        if not ref:
            if _api(request):
                return _error(request, self, 400, "give ?ref= (models:/NAME@ALIAS, a run id or "
                                                  "a dataset digest)")  # fmt: skip
            return self.page(request, "lineage.html", graph=None, svg="", ref="", direction="",
                             starts=lineage.starts(self.stores), links={})  # fmt: skip
        graph = lineage.build(self.stores, ref, direction)
        if _api(request):
            return _json(graph)
        links = {n.id: lineage.node_ref(n) for n in graph.nodes}
        return self.page(request, "lineage.html", graph=graph, svg=lineage.svg(graph), ref=ref,
                         direction=graph.direction, starts=[], links=links,
                         href=lineage.href)  # fmt: skip

    # -- models -------------------------------------------------------------------------------
    def models_page(self, request: Request) -> Response:
        found = models.list_models(self.stores)
        if _api(request):
            return _json(found)
        return self.page(request, "models.html", models=found)

    def model_page(self, request: Request, message: str | None = None,
                   result: Any = None, status: int = 200) -> Response:  # fmt: skip
        name = request.path_params["name"]
        view = models.get_model(self.stores, name)
        if _api(request):
            return _json(view)
        q = request.query_params
        version, alias = q.get("version"), q.get("alias")
        checked = None
        if version and alias and result is None:
            checked = models.check(self.stores, name, version, alias, q.get("approver") or None)
        return self.page(request, "model.html", status=status, m=view, checked=checked,
                         version=version or "", alias=alias or "", message=message,
                         result=result)  # fmt: skip

    def check_api(self, request: Request) -> Response:
        q = request.query_params
        if not q.get("version") or not q.get("alias"):
            return _error(request, self, 400, "give ?version=N&alias=NAME")
        result = models.check(self.stores, request.path_params["name"], q["version"], q["alias"],
                              q.get("approver") or None)  # fmt: skip
        return _json(result)

    async def action_api(self, request: Request) -> Response:
        try:
            body = models.ActionRequest.model_validate(json.loads(await request.body()))
        except ValueError as exc:
            return _error(request, self, 400, f"bad action request: {exc}")
        return self._act(request, body)

    async def action_form(self, request: Request) -> Response:
        form = {k: v[0] for k, v in urllib.parse.parse_qs((await request.body()).decode()).items()}
        if not secrets.compare_digest(form.pop("form_key", ""), self.form_key):
            return _error(request, self, 403, "this form is stale: reload the page and retry.")
        form["force"] = "true" if form.get("force") in ("on", "true", "1") else "false"
        try:
            body = models.ActionRequest.model_validate(form)
        except ValueError as exc:
            return _error(request, self, 400, f"bad action request: {exc}")
        return self._act(request, body)

    def _act(self, request: Request, body: models.ActionRequest) -> Response:
        name = request.path_params["name"]
        try:
            outcome = models.act(self.stores, name, body, actor=None)
        except PolicyViolation as exc:
            if _api(request):
                return JSONResponse({"error": exc.message, "policy": _dump(exc.result)}, 409)
            return self.model_page(request, message=exc.message, result=exc.result, status=409)
        if _api(request):
            return JSONResponse(outcome)
        return self.model_page(request, message=str(outcome["message"]))


def _api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _int(value: str | None, default: int) -> int:
    try:
        return max(1, min(int(value or default), 1000))
    except ValueError:
        return default


def _dump(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump(mode="json") if dump else value


def _json(data: BaseModel | list[Any]) -> JSONResponse:
    from stackwise.cli.render import finite

    payload = [_dump(x) for x in data] if isinstance(data, list) else _dump(data)
    return JSONResponse(finite(payload))


def _duration(value: float | None) -> str:
    if value is None:
        return ""
    if value < 60:
        return f"{value:.1f}s"
    return f"{int(value // 60)}m{int(value % 60):02d}s"


def _error(request: Request, app: Dashboard, status: int, message: str) -> Response:
    if _api(request):
        return JSONResponse({"error": message}, status)
    return app.page(request, "error.html", status=status, message=message)


def create_app(
    config: StackConfig,
    *,
    token: str | None = None,
    allow_actions: bool = False,
    allowed_hosts: set[str] | None = None,
    mlflow_ui: str | None = None,
) -> Any:
    """The ASGI app for `config`'s stores. `token`: required on every request when set;
    `allow_actions`: POST promotions and rollbacks (else every POST is 403); `allowed_hosts`:
    accepted Host headers (None: any). Opens the stores now: a bad store fails here, with the
    CLI's own error."""
    stores = Stores(config, mlflow_ui or "")
    stores.open()
    form_key = secrets.token_urlsafe(16)
    d = Dashboard(stores, allow_actions=allow_actions, form_key=form_key)

    def guarded(handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            from starlette.concurrency import run_in_threadpool

            try:
                if handler in (d.action_api, d.action_form):
                    response: Response = await handler(request)
                    return response
                response = await run_in_threadpool(handler, request)
                return response
            except (RunNotFoundError, LookupError) as exc:
                what = exc.message if isinstance(exc, StackwiseError) else f"nothing named {exc}"
                return _error(request, d, 404, what)
            except GovernanceError as exc:
                return _error(request, d, 404 if "no registered" in exc.message else 400,
                              exc.message)  # fmt: skip
            except StackwiseError as exc:
                return _error(request, d, 400, exc.message)

        return endpoint

    pages = [
        ("/runs", d.runs_page), ("/runs/{run_id}", d.run_page),
        ("/pipelines", d.pipelines_page), ("/pipelines/{name:path}", d.pipeline_page),
        ("/backfills", d.backfills_page), ("/backfills/{backfill_id}", d.backfill_page),
        ("/lineage", d.lineage_page), ("/models", d.models_page), ("/models/{name}", d.model_page),
    ]  # fmt: skip
    routes: list[BaseRoute] = [Route("/", lambda _r: RedirectResponse("/runs"))]
    for path, handler in pages:
        routes.append(Route(path, guarded(handler)))
        routes.append(Route("/api" + path, guarded(handler)))
    routes += [
        Route("/runs/{run_id}/steps/{step}/log", guarded(d.step_log)),
        Route("/api/models/{name}/check", guarded(d.check_api)),
        Route("/api/models/{name}/actions", guarded(d.action_api), methods=["POST"]),
        Route("/models/{name}/actions", guarded(d.action_form), methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes)
    return Guard(app, token=token, allow_actions=allow_actions, form_key=form_key,
                 allowed_hosts=allowed_hosts)  # fmt: skip
