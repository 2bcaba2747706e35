"""Merged adapters: LoRA adapters of one base combined into one with peft's `add_weighted_adapter`.

The result is a normal peft adapter folder (loadable by peft, and by vLLM within its max_lora_rank)
with `merge.json` naming its parents, the method and the weights. Everything that peft would reject
late, or get silently wrong, is a UserError before any model loads:

- `linear`, `ties`, `dare_*`, `magnitude_prune` combine the A and B matrices entry by entry: the
  parents need equal ranks. `cat` stacks them (rank = the sum); the `*_svd` methods and `svd`
  re-factorise the summed delta to `svd_rank` (default: the largest parent rank).
- rsLoRA parents (`use_rslora`): peft scales the merged adapter by alpha/r instead of alpha/sqrt(r),
  sqrt(r) too strong (peft issue 3761). Refused rather than corrected: the fix would depend on
  peft's internals, which may change.
- The parents must adapt the same modules: a module only some parents adapt would be merged with an
  implicit zero and a weight the user did not ask for.
- One parent can only be scaled (`linear`): peft merges a single adapter linearly whatever the method,
  so `svd --svd-rank 4` of one rank-8 adapter would silently stay rank 8.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from harness.config import MERGE_METHODS
from harness.errors import UserError
from harness.models import BaseModel, check_adapter, load_causal_lm
from harness.runtime.files import publish_dir, write_json
from harness.store.paths import MERGE_RECORD

METHODS = MERGE_METHODS
EQUAL_RANKS = {"linear", "ties", "dare_ties", "dare_linear", "magnitude_prune"}
USES_DENSITY = {"ties", "ties_svd", "dare_ties", "dare_linear", "dare_ties_svd", "dare_linear_svd", "magnitude_prune",
                "magnitude_prune_svd"}


def merged_rank(method: str, ranks: list[int], svd_rank: int | None = None) -> int:
    if method == "cat":
        return sum(ranks)
    if method in EQUAL_RANKS:
        return ranks[0]
    return svd_rank or max(ranks)


def check(base: BaseModel, parents: list[tuple[str, Path]], method: str, weights: list[float] | None,
          density: float | None, svd_rank: int | None = None) -> list[dict]:
    """Every rule above, before any model loads; returns the parents' adapter configs."""
    if method not in METHODS:
        raise UserError(f"--method {method}: expected one of {', '.join(METHODS)}")
    if not parents:
        raise UserError("--adapter: give at least one NAME=DIR to merge")
    if len(parents) == 1 and method != "linear":
        raise UserError(f"--method {method}: needs two or more adapters (peft merges a single one linearly, whatever the method); "
                        "use --method linear to scale one")
    if weights is not None and len(weights) != len(parents):
        raise UserError(f"--weights: {len(weights)} weights for {len(parents)} adapters")
    if method in USES_DENSITY and not (density is not None and 0 < density <= 1):
        raise UserError(f"--density {density}: {method} keeps this share of each delta's entries; give a value in (0, 1]")
    if svd_rank is not None and svd_rank < 1:
        raise UserError(f"--svd-rank {svd_rank}: must be at least 1")
    configs = [check_adapter(path, base, f"--adapter {name}={path}") for name, path in parents]
    names = [name for name, _ in parents]
    if rs := [n for n, c in zip(names, configs, strict=True) if c.get("use_rslora")]:
        raise UserError(f"--adapter {rs[0]}: trained with use_rslora; peft merges rsLoRA adapters sqrt(r) too strong "
                        "(peft issue 3761), so the harness refuses to")
    ranks = [int(c.get("r", 8)) for c in configs]
    if method in EQUAL_RANKS and len(set(ranks)) > 1:
        shown = ", ".join(f"{n} r={r}" for n, r in zip(names, ranks, strict=True))
        raise UserError(f"--method {method}: needs adapters of equal rank ({shown}); use cat, svd or a *_svd method")
    targets = [sorted(c.get("target_modules") or []) if isinstance(c.get("target_modules"), list) else c.get("target_modules")
               for c in configs]
    odd = next((i for i, t in enumerate(targets) if t != targets[0]), None)
    if odd is not None:
        raise UserError(f"--adapter {names[odd]}: adapts other modules ({targets[odd]}) than {names[0]} ({targets[0]})")
    return configs


def merge(base: BaseModel, parents: list[tuple[str, Path]], method: str, out: Path, weights: list[float] | None = None,
          density: float | None = None, svd_rank: int | None = None) -> dict:
    """Write the merged adapter to `out` (published whole) with merge.json; returns merge.json's content."""
    out = Path(out)
    if out.exists():
        raise UserError(f"--out {out}: already exists; remove it or choose another directory")
    configs = check(base, parents, method, weights, density, svd_rank)
    from peft import PeftModel  # after the checks: bad input is refused without loading peft (seconds)

    weights = weights or [1.0] * len(parents)
    names = [f"p{i}" for i in range(len(parents))]  # peft adapter names: the user's may clash with peft's own ("default")
    model = PeftModel.from_pretrained(load_causal_lm(base, "float32"), str(parents[0][1]), adapter_name=names[0])
    for name, (_, path) in zip(names[1:], parents[1:], strict=True):
        model.load_adapter(str(path), adapter_name=name)
    options = {"density": density} if method in USES_DENSITY else {}
    if method == "svd" or method.endswith("_svd"):
        options["svd_rank"] = svd_rank
    model.add_weighted_adapter(adapters=names, weights=weights, adapter_name="merged", combination_type=method, **options)
    ranks = [int(c.get("r", 8)) for c in configs]
    record = {
        "method": method, "weights": weights, "density": density, "svd_rank": svd_rank,
        "r": merged_rank(method, ranks, svd_rank),
        "parents": [{"name": n, "path": str(Path(p).resolve()), "r": r, "lora_alpha": c.get("lora_alpha")}
                    for (n, p), r, c in zip(parents, ranks, configs, strict=True)],
        "base": {"spec": base.spec, "identity": base.identity},
    }
    with tempfile.TemporaryDirectory(prefix="harness-merge-") as saved, publish_dir(out) as tmp:
        model.save_pretrained(saved, selected_adapters=["merged"])  # peft writes a non-default adapter to <dir>/<name>/
        for f in (Path(saved) / "merged").iterdir():
            (tmp / f.name).write_bytes(f.read_bytes())
        write_json(tmp / MERGE_RECORD, record)
    return record
