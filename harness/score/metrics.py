"""Per-item metrics for generation suites. Each takes (prediction, reference) and returns a float.

`METRICS` maps a suite file's `metrics[].name` to a factory (the spec -> the metric function): most
metrics ignore the spec, `regex` compiles its pattern. `function:` metrics are the user's own.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import re
from collections.abc import Callable
from pathlib import Path

from harness.config import MetricSpec
from harness.errors import UserError
from harness.runtime.registry import Registry

Metric = Callable[[str, str], float]
METRICS: Registry[Callable[[MetricSpec], Metric]] = Registry("metric")


def plain(name: str):
    """Register a metric that needs nothing from its spec."""

    def add(fn: Metric) -> Metric:
        METRICS.add(name, lambda spec: fn)
        return fn

    return add


def _first_json_object(text: str):
    """The first JSON object in the text: models often wrap JSON in prose or code fences."""
    start = text.find("{")
    while start != -1:
        try:
            value, _ = json.JSONDecoder().raw_decode(text[start:])
            return value if isinstance(value, dict) else None
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
    return None


def _norm(value) -> str:
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value).strip().lower()


@plain("exact_match")
def exact_match(pred: str, ref: str) -> float:
    return float(pred.strip() == ref.strip())


@plain("json_exact_match")
def json_exact_match(pred: str, ref: str) -> float:
    got, want = _first_json_object(pred), json.loads(ref)
    return float(got is not None and {k: _norm(v) for k, v in got.items()} == {k: _norm(v) for k, v in want.items()})


@plain("json_field_f1")
def json_field_f1(pred: str, ref: str) -> float:
    """F1 over (field, value) pairs: partial credit for each field extracted right."""
    want = {(k, _norm(v)) for k, v in json.loads(ref).items()}
    got_obj = _first_json_object(pred)
    got = {(k, _norm(v)) for k, v in got_obj.items()} if got_obj else set()
    hits = len(want & got)
    if not hits:
        return 0.0
    precision, recall = hits / len(got), hits / len(want)
    return 2 * precision * recall / (precision + recall)


@plain("contains")
def contains(pred: str, ref: str) -> float:
    return float(ref.strip().lower() in pred.lower())


@plain("rouge_l")
def rouge_l(pred: str, ref: str) -> float:
    """ROUGE-L F1 on whitespace tokens (longest common subsequence)."""
    a, b = pred.split(), ref.split()
    if not a or not b:
        return float(a == b)
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    lcs = prev[-1]
    if not lcs:
        return 0.0
    p, r = lcs / len(a), lcs / len(b)
    return 2 * p * r / (p + r)


@METRICS.register("regex")
def regex(spec: MetricSpec) -> Metric:
    """1 if the pattern matches the prediction (and its match equals the reference, when there is one)."""
    pattern = re.compile(spec.pattern)

    def matches(pred: str, ref: str) -> float:
        found = pattern.search(pred)
        return float(bool(found) and (not ref or found.group(0).strip() == ref.strip()))

    return matches


def resolve(spec: MetricSpec, suite_dir: Path) -> Metric:
    if spec.name:
        return METRICS.get(spec.name)(spec)
    target, _, func = spec.function.rpartition(":")
    try:
        if target.endswith(".py"):
            path = (suite_dir / target).resolve()
            if not path.is_file():
                raise UserError(f"metric function {spec.function}: no file {path}")
            mod_spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(mod_spec)
            mod_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 - the user's module failed to import: say why, in one line
        raise UserError(f"metric function {spec.function}: cannot import {target}: {type(err).__name__}: {err}") from None
    fn = getattr(module, func, None)
    if not callable(fn):
        raise UserError(f"metric function {spec.function}: {func!r} not found in {target}")
    try:
        inspect.signature(fn).bind("prediction", "reference")
    except TypeError:
        raise UserError(f"metric function {spec.function}: must take (prediction, reference); its signature is {func}{inspect.signature(fn)}") from None
    except ValueError:  # a builtin without a signature: checked when it is called
        pass
    return fn


def check_returns_a_number(spec: MetricSpec, fn: Callable[[str, str], float], prediction: str, reference: str) -> None:
    """Call a metric once on a sample (the reference as its own prediction): it must return a real number."""
    try:
        value = fn(prediction, reference)
    except Exception as err:  # noqa: BLE001 - the user's function: its error, in one line
        raise UserError(f"metric {spec.key}: raised {type(err).__name__}: {err} on a sample item") from None
    if not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise UserError(f"metric {spec.key}: returned {type(value).__name__}, expected a float")
