"""`stackwise image dockerfile TARGET`: the Dockerfile and locked requirements of the base
image compiled pipelines run in (see `stackwise.images`)."""

from __future__ import annotations

import typer

from stackwise.cli.main import app, guarded

image_app = typer.Typer(help="The base image of compiled pipelines.", no_args_is_help=True)
app.add_typer(image_app, name="image")


@image_app.command("dockerfile")
@guarded
def dockerfile(
    target: str = typer.Argument(..., help="Pipeline: 'package.module:name' or 'file.py:name'."),
    out: str = typer.Option("image", "--out", help="Folder for Dockerfile and requirements.lock."),
    repository: str | None = typer.Option(
        None, "--repository", help="Image repository (default: kubeflow.image's, or "
        "stackwise-base)."),
    base: str | None = typer.Option(None, "--base", help="Base image (default python:X.Y-slim)."),
    stack: str | None = typer.Option(None, "--stack", help="Stack config file."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Write a Dockerfile and a locked requirements file for a base image holding stackwise and
    the pipeline's third-party dependencies; its tag is the lock's sha256, so it is rebuilt
    only when dependencies change."""
    from pathlib import Path

    from stackwise.authoring.loader import load_pipeline
    from stackwise.cli.render import json_text, out_console
    from stackwise.config import load_stack
    from stackwise.images import write

    config = load_stack(stack)
    pipeline = load_pipeline(target)
    if repository is None:
        current = (config.kubeflow or {}).get("image")
        repository = (
            str(current).split("@")[0].rsplit(":", 1)[0]
            if current and ":" in str(current).split("/")[-1] else current or "stackwise-base"
        )
    spec = write(pipeline.name, config.base_dir, Path(out), str(repository), base)
    if as_json:
        typer.echo(json_text({"dockerfile": str(spec.dockerfile), "lock": str(spec.lock),
                              "sha256": spec.sha256, "image": spec.image,
                              "requirements": list(spec.requirements)}))  # fmt: skip
        return
    console = out_console()
    console.print(f"wrote {spec.dockerfile} and {spec.lock} ({len(spec.requirements)} pins)",
                  highlight=False)  # fmt: skip
    console.print(f"image {spec.image}", highlight=False)
    console.print(f"build once: docker build -t {spec.image} {out} && docker push {spec.image}",
                  highlight=False)  # fmt: skip
    console.print("then set kubeflow.image to it in the stack file", highlight=False)
