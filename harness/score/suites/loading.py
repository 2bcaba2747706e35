"""Loading a suite: a reference (a YAML path or a shipped suite's name) -> a Suite with its items.

`limit` draws a fixed subset (the kind decides how: topic-stratified for MMLU, a seeded sample
otherwise); without one, the suite's own `limit.<scope>` applies (`full` for `harness eval`,
`sweep` for a sweep trial). The version hashes the spec and the full data, so the same item keeps
its identity whatever the limit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from harness import config
from harness.errors import UserError
from harness.runtime.hashing import sha256_json
from harness.score.suites._base import KINDS, Suite, kind_of

# The suites shipped with the harness: package data (in a checkout, a link to the repository's suites/).
SHIPPED = Path(__file__).resolve().parent / "shipped"


def find_suite_file(ref: str) -> Path:
    path = Path(ref)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise UserError(f"--suite {ref}: no such file")
        return path
    for candidate in (Path("suites") / f"{ref}.yaml", SHIPPED / f"{ref}.yaml", Path("suites") / ref / "suite.yaml", SHIPPED / ref / "suite.yaml"):
        if candidate.is_file():
            return candidate
    known = sorted({p.stem for p in SHIPPED.glob("*.yaml")} | {p.parent.name for p in SHIPPED.glob("*/suite.yaml")})
    raise UserError(f"--suite {ref}: unknown suite (not a YAML file, not one of {', '.join(known)})")


def load_suite(ref: str, limit: int | None = None, scope: Literal["full", "sweep"] | None = None,
               include_path: list[Path] = ()) -> Suite:
    """The suite `ref` (a name, a YAML file, or lm-eval:TASK with task YAMLs in `include_path`) with
    `limit` items, else its own `limit.<scope>`, else all of them."""
    if limit is not None and limit < 1:
        raise UserError(f"--limit {limit}: must be at least 1 (or leave it out: the suite's own limit)")
    by_reference = next((k for k in map(KINDS.get, KINDS.names()) if k.prefix and ref.startswith(k.prefix)), None)
    if include_path and by_reference is None:
        raise UserError(f"--include-path: only for lm-eval tasks (--suite lm-eval:NAME), not --suite {ref}")
    if by_reference is not None:
        source, cfg = Path(ref), by_reference.config_for(ref, list(include_path))
    else:
        source = find_suite_file(ref)
        cfg = config.load(source, "suite")
        if cfg.include_path:  # relative to the suite file, as every path a YAML names
            cfg = cfg.model_copy(update={"include_path": [source.parent / p for p in cfg.include_path]})
    kind = kind_of(cfg)
    kind.check_options(cfg, source)
    all_rows = kind.rows(cfg, source)
    kind.check(cfg, all_rows, source)
    version = sha256_json({"spec": cfg.model_dump(mode="json", exclude={"limit", "description"}), "data": sha256_json(all_rows)})[:16]
    if limit is None and scope is not None:
        limit = getattr(cfg.limit, scope)
    rows, fewshot = kind.select(all_rows, limit, cfg)
    return Suite(cfg, source, rows, kind, fewshot, version)
