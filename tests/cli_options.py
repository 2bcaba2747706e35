"""Every option `harness --help` lists must be passed by at least one test: `harness` appends each of
its command lines to $HARNESS_CLI_LOG (set by conftest for the whole session, subprocesses included)
and, when the whole suite ran, conftest fails the run naming every option no test passed.

Passing an option is the floor, not the bar: the test that passes it must assert on its effect."""

from __future__ import annotations

import json
from pathlib import Path


def options() -> dict[tuple[str, ...], dict[str, str]]:
    """{command path: {every spelling of an option: its canonical (first) spelling}} from the real CLI."""
    import typer

    from harness import cli

    found: dict[tuple[str, ...], dict[str, str]] = {}

    def walk(command, path: tuple[str, ...]) -> None:
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, (*path, name))
            return
        spellings = {}
        for param in command.params:
            if param.param_type_name == "option" and not param.hidden:
                for opt in (*param.opts, *param.secondary_opts):
                    spellings[opt] = param.opts[0]
        found[path] = spellings

    walk(typer.main.get_command(cli.app), ())
    return found


def passed(log: Path, known: dict[tuple[str, ...], dict[str, str]]) -> set[tuple[tuple[str, ...], str]]:
    """(command path, canonical option) for every option on a logged command line; bare commands count as ("",)."""
    seen = set()
    for line in log.read_text().splitlines() if log.exists() else []:
        argv = json.loads(line)
        path = next((p for p in sorted(known, key=len, reverse=True) if tuple(argv[:len(p)]) == p), None)
        if path is None:
            continue
        seen.add((path, ""))
        for token in argv[len(path):]:
            name = token.split("=", 1)[0]
            if name in known[path]:
                seen.add((path, known[path][name]))
    return seen


def unexercised(log: Path) -> list[str]:
    """'harness CMD --option' for every command and option that no logged command line passed."""
    known = options()
    seen = passed(log, known)
    missing = []
    for path, spellings in sorted(known.items()):
        for canonical in [""] + sorted(set(spellings.values())):
            if (path, canonical) not in seen:
                missing.append(" ".join(["harness", *path, canonical]).strip() + ("" if canonical else " (never run)"))
    return missing
