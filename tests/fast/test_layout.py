"""The package's layout rules, checked on the source: imports point down the flow (no circles, even
through imports inside functions), few top-level modules and no module over 350 lines, one place
that renames files into place, one that builds paths, one that touches Optuna's private API, and
suite kinds decided only by the registry and asked nothing outside their package."""

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


def _lines(pattern: str, allowed: set[Path]) -> list[str]:
    rx = re.compile(pattern)
    return [f"{f.relative_to(REPO)}:{i}" for f in PACKAGE.rglob("*.py") if f not in allowed
            for i, line in enumerate(f.read_text().splitlines(), 1) if rx.search(line)]


def test_suite_kinds_are_decided_only_by_the_registry():
    # config.py declares the field and checks a task suite's own fields; the registry maps it to a kind.
    allowed = {PACKAGE / "config.py", PACKAGE / "score" / "suites" / "_base.py"}
    offenders = _lines(r"\.builtin\b", allowed)
    assert not offenders, offenders


def test_nothing_outside_the_suite_kinds_asks_which_kind_a_suite_is():
    """Kinds own their tasks, grading, metric keys and divisibility: no lm-eval output types, kind
    names or the lm-eval kind's own module outside score/suites/."""
    suites = PACKAGE / "score" / "suites"
    inside = set(suites.glob("*.py"))
    offenders = _lines(r"OUTPUT_TYPE|\.kind\.name\b|kind_of\(|lmeval_task|\bKINDS\.get\(", inside)
    assert not offenders, offenders


def test_only_the_store_paths_module_builds_paths_under_runs_reports_and_harness_home():
    allowed = {PACKAGE / "store" / "paths.py"}
    offenders = _lines(r"""Path\(["'](runs|reports)|["'](runs|reports)/|harness_home\(\)|HARNESS_HOME["']|["'](items\.parquet|scores\.json|"""
                       r"""best\.json|champion\.json|train\.json|merge\.json|journal\.log)["']""", allowed)
    assert not offenders, offenders


def test_only_the_study_handle_touches_optunas_private_api():
    offenders = _lines(r"\._storage\b|\._trial_id\b|\._study_id\b", {PACKAGE / "store" / "study.py"})
    assert not offenders, offenders


def test_no_module_is_over_350_lines_but_the_cli_and_the_configs():
    long = {str(f.relative_to(REPO)): n for f in PACKAGE.rglob("*.py") if f.name not in ("cli.py", "config.py")
            and (n := len(f.read_text().splitlines())) > 350}
    assert not long, long


def test_the_shipped_suites_are_package_data():
    """A wheel carries what `harness.score.suites.shipped` holds: pyproject names it as package data."""
    import tomllib

    shipped = PACKAGE / "score" / "suites" / "shipped"
    assert (shipped / "mmlu.yaml").is_file() and (shipped / "extraction" / "suite.yaml").is_file()
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["harness.score.suites"]
    assert "shipped/*.yaml" in data and "shipped/*/*" in data
