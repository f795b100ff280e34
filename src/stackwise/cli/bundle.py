"""`stackwise bundle`: pack the project's source into a content-hashed code bundle in the
artifact store, so that workers run changed code without a new image."""

from __future__ import annotations

import typer

from stackwise.cli.main import app, guarded


@app.command()
@guarded
def bundle(
    target: str = typer.Argument(..., help="Pipeline: 'package.module:name' or 'file.py:name'."),
    stack: str | None = typer.Option(None, "--stack", help="Stack config file."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Pack the project (the stack file's folder, .gitignore respected) into a code bundle in
    the artifact store and print its reference, for invocations and exported pipelines."""
    import time

    from stackwise.authoring.loader import load_pipeline
    from stackwise.bundles import build_bundle, portable_ref
    from stackwise.cli.render import json_text, out_console
    from stackwise.config import load_stack
    from stackwise.errors import BundleError

    config = load_stack(stack)
    load_pipeline(target)  # it must load here before it is shipped anywhere
    root = config.base_dir
    started = time.perf_counter()
    ref, files, size = build_bundle(root, config.artifact_store_resolved)
    elapsed = time.perf_counter() - started
    pipeline = portable_ref(target, root, ref)
    if not pipeline.is_portable:
        raise BundleError(
            f"{target} is outside the project folder {root}, so the bundle does not hold it; "
            "run from the project folder, or point --stack at the project's stackwise.yaml."
        )
    if as_json:
        data = {"bundle": ref.model_dump(), "pipeline": pipeline.model_dump(), "files": files,
                "bytes": size, "seconds": round(elapsed, 3)}  # fmt: skip
        typer.echo(json_text(data))
        return
    console = out_console()
    console.print(f"bundle {ref.uri}")
    console.print(f"  sha256 {ref.digest}, {files} files, {size / 1024:.1f} KiB, {elapsed:.2f}s")
    console.print(f"  pipeline {pipeline.target}:{pipeline.name} (relative to the bundle root)")
