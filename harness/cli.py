"""The `harness` command line. It only parses arguments and calls the stage functions."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from harness import environment
from harness.errors import UserError

app = typer.Typer(
    help="Evaluation and model selection for LoRA fine-tuning: sweep, score, record, report, gate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
models_app = typer.Typer(help="Base models: prepare the embedded default or a GGUF once.", no_args_is_help=True)
app.add_typer(models_app, name="models")

console = Console()
err_console = Console(stderr=True)


@app.command()
def validate(files: Annotated[list[Path], typer.Argument(help="Suite, sweep or gate YAML files.")]):
    """Check suite, sweep and gate YAML files; exit 2 naming every bad field."""
    from harness import config

    problems: list[str] = []
    for path in files:
        try:
            cfg = config.load(path)
            console.print(f"[green]ok[/] {path} ({type(cfg).__name__.removesuffix('Config').lower()})")
        except UserError as err:
            problems.extend(err.lines)
    if problems:
        raise UserError(*problems)


@app.command()
def doctor():
    """Report versions, CPU/GPU features, embedded assets and the sandbox; exit 1 if something required is missing."""
    from harness.doctor import run_checks

    checks = run_checks()
    table = Table("check", "status", "detail")
    table.columns[2].overflow = "fold"
    for c in checks:
        status = "[green]ok[/]" if c.ok else ("[red]MISSING[/]" if c.required else "[yellow]no[/]")
        table.add_row(c.name, status, c.detail)
    console.print(table)
    missing = [c.name for c in checks if c.required and not c.ok]
    if missing:
        err_console.print(f"harness cannot run: missing {', '.join(missing)}")
        raise typer.Exit(1)


@models_app.command("prepare")
def models_prepare(spec: Annotated[str, typer.Argument(help="'default', a .gguf file, a model dir or a hub id")] = "default"):
    """Convert a GGUF base model once into a safetensors directory in the harness cache; print its path."""
    from harness.models import resolve_base

    print(resolve_base(spec).path)


def main() -> None:
    environment.configure()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("httpx", "urllib3", "filelock", "datasets", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        app()
    except UserError as err:
        for line in err.lines:
            print(f"error: {line}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
