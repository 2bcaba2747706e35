"""The package's layout rules, checked on the source: imports point down the flow (no circles, even
through imports inside functions), few top-level modules, one place that renames files into place,
and suite kinds decided only by the registry."""

import ast
import re
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "harness"


def _modules() -> dict[str, Path]:
    mods = {}
    for f in PACKAGE.rglob("*.py"):
        parts = list(f.relative_to(REPO).with_suffix("").parts)
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return mods


def _imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """module -> harness modules it imports anywhere in its body (package faces excluded)."""

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rsplit(".", 1)[0] if "." in name else ""
        return name or None

    faces = {m for m, f in mods.items() if f.name == "__init__.py"}
    graph = {}
    for mod, f in mods.items():
        if mod in faces:
            continue
        out = set()
        for node in ast.walk(ast.parse(f.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("harness"):
                names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
            for n in names:
                target = resolve(n) if n.startswith("harness") else None
                if target and target != mod and target not in faces:
                    out.add(target)
        graph[mod] = out
    return graph


def test_no_import_circles():
    graph = _imports(_modules())
    state: dict[str, int] = {}
    circles = []

    def visit(node, path):
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                circles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for mod in graph:
        if mod not in state:
            visit(mod, [mod])
    assert not circles, circles


def test_the_top_level_holds_at_most_12_modules():
    top = [f.name for f in PACKAGE.glob("*.py")]
    assert len(top) <= 12, top


def test_only_runtime_files_renames_files_into_place():
    allowed = PACKAGE / "runtime" / "files.py"
    pattern = re.compile(r"os\.(replace|rename)\(|shutil\.move\(|\btmp\w*\.(rename|replace)\(|\.tmp[\"']")
    offenders = [f"{f.relative_to(REPO)}:{i}" for f in PACKAGE.rglob("*.py") if f != allowed
                 for i, line in enumerate(f.read_text().splitlines(), 1) if pattern.search(line)]
    assert not offenders, f"write through harness.runtime.files instead: {offenders}"


def test_suite_kinds_are_decided_only_by_the_registry():
    # config.py declares the field and checks a task suite's own fields; the registry maps it to a kind.
    allowed = {PACKAGE / "config.py", PACKAGE / "score" / "suites" / "_base.py"}
    offenders = [f"{f.relative_to(REPO)}:{i}" for f in PACKAGE.rglob("*.py") if f not in allowed
                 for i, line in enumerate(f.read_text().splitlines(), 1) if re.search(r"\.builtin\b", line)]
    assert not offenders, offenders


def test_only_the_store_names_the_runs_and_reports_folders():
    pattern = re.compile(r"""Path\(["'](runs|reports)""")
    offenders = [f"{f.relative_to(REPO)}:{i}" for f in PACKAGE.rglob("*.py") if f.name != "store.py"
                 for i, line in enumerate(f.read_text().splitlines(), 1) if pattern.search(line)]
    assert not offenders, offenders
