"""`harness gate`: pass or fail a candidate against benchmark rules, for CI.

Fail closed: a missing suite or metric, fewer items than the rule's `min_items` (on the candidate,
and shared with the baseline for a regression rule), a NaN on either side, or a failed suite result
is a failure naming its reason and counts, never a pass. Rules compare the candidate with an
absolute threshold or with a baseline (regression limit):
  point       the mean must clear the threshold; the mean must be within max_regression of the
              baseline's mean
  confident   a claim that must be shown: the 95% interval (stats/intervals.py) must lie wholly on
              the passing side of the threshold, and the paired difference's 95% interval wholly
              within max_regression of the baseline (non-inferiority), so fewer items make passing
              harder, never easier
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.config import GateConfig, GateRule
from harness.errors import UserError
from harness.runtime.files import atomic_write
from harness.select.pick import pick
from harness.select.promote import promote as make_champion
from harness.stats.intervals import difference_estimate, mean_estimate
from harness.store import documents, paths
from harness.store.documents import BestDoc, ChampionDoc, GateVerdictDoc, RuleVerdict
from harness.store.paths import ITEMS
from harness.store.reading import Results, current_champion


def resolve_candidate(results: Results, spec: str | None) -> str:
    """`best` (a study's pick: reports/<study>/best.json, else the report's rule), a name, or the one adapter."""
    names = results.candidates()
    if spec is None:
        adapters = [n for n in names if n != "base"]
        if len(adapters) != 1:
            raise UserError(f"--candidate: {results.path} holds {', '.join(names)}; name the one to gate")
        return adapters[0]
    if spec == "best":
        if results.study is None:
            raise UserError("--candidate best: needs --study (the pick is made over a sweep's trials)")
        best_file = paths.best_file(results.name)
        spec = (documents.read(best_file, BestDoc) if best_file.is_file() else pick(results.study)).candidate
    if spec not in names:
        raise UserError(f"--candidate {spec}: not in {results.path} (candidates: {', '.join(names)})")
    return spec


def resolve_baseline(results: Results, ref: str | None, candidate: str) -> tuple[Results, str] | None:
    """`champion`, `base`, a candidate of the same results, or DIR[:NAME]; default: the champion, else base."""
    champion = current_champion(results.name)
    if ref is None:
        ref = "champion" if champion else ("base" if "base" in results.candidates() and candidate != "base" else None)
    if ref is None:
        return None
    if ref == "champion":
        if champion is None:
            raise UserError(f"--baseline champion: no {paths.champion_file(results.name)} yet (promote one with --promote)")
        where = Path(champion.results)
        if not (where / ITEMS).is_file():
            raise UserError(f"--baseline champion: {paths.champion_file(results.name)} points to {where}, which has no {ITEMS}")
        return Results.load(where), champion.candidate
    if ref in results.candidates():
        return results, ref
    path, _, name = ref.partition(":")
    if Path(path).is_dir():
        other = Results.load(Path(path))
        chosen = name or next(iter([n for n in other.candidates() if n != "base"] or other.candidates()), None)
        if chosen not in other.candidates():
            raise UserError(f"--baseline {ref}: no candidate {chosen!r} there")
        return other, chosen
    raise UserError(f"--baseline {ref}: not a candidate of {results.path} ({', '.join(results.candidates())}) nor a results directory")


def headline_scores(results: Results, candidate: str) -> dict[str, float]:
    """suite.metric -> mean, for the champion record."""
    long = results.metrics[results.metrics.candidate == candidate]
    return {f"{s}.{m}": float(g.astype(float).mean()) for (s, m), g in long.groupby(["suite", "metric"])["value"]}


def _verdict(rule: str, passed: bool, value: float, ci_low: float, ci_high: float, threshold: float, detail: str) -> RuleVerdict:
    return RuleVerdict(rule=rule, passed=passed, value=value, ci_low=ci_low, ci_high=ci_high, threshold=threshold, detail=detail)


def rule_text(rule: GateRule) -> str:
    if rule.threshold is not None:
        return f"{rule.metric} {rule.op} {rule.threshold:g} [{rule.mode}]"
    sign = "-" if rule.op == ">=" else "+"
    return f"{rule.metric} {rule.op} baseline {sign} {rule.max_regression:g} [{rule.mode}]"


def _values(results: Results, candidate: str, suite: str, metric: str) -> pd.Series:
    long = results.metrics[(results.metrics.candidate == candidate) & (results.metrics.suite == suite)]
    return long[long.metric == metric].set_index("item_id")["value"].astype(float)


def check(cfg: GateConfig, results: Results, candidate: str, baseline: tuple[Results, str] | None) -> list[RuleVerdict]:
    if candidate not in results.candidates():
        raise UserError(f"--candidate {candidate}: not in {results.path} (candidates: {', '.join(results.candidates())})")
    known = {(s, m) for s, m in results.metrics[["suite", "metric"]].drop_duplicates().itertuples(index=False)}
    suites_present = {s for s, _ in known}
    for rule in cfg.rules:
        suite, metric = rule.metric.split(".", 1)
        if suite in suites_present and (suite, metric) not in known:
            valid = sorted(m for s, m in known if s == suite)
            raise UserError(f"rule {rule.metric}: unknown metric {metric!r} for suite {suite} (has: {', '.join(valid)})")
    failed_suites = {f["suite"]: f["reason"] for f in results.failures if candidate in f.get("candidates", [candidate])}
    verdicts = [_required(s, results, candidate, failed_suites) for s in cfg.required_suites]
    for rule in cfg.rules:
        verdicts.append(_rule(rule, results, candidate, baseline, failed_suites))
    return verdicts


def _required(suite: str, results: Results, candidate: str, failed: dict) -> RuleVerdict:
    n = int(((results.items.candidate == candidate) & (results.items.suite == suite)).sum())
    ok = n > 0 and suite not in failed
    reason = failed.get(suite) or ("" if n else "no results for this suite")
    return _verdict(f"required suite {suite}", ok, float(n), math.nan, math.nan, 1.0, reason or f"{n} items")


def _rule(rule: GateRule, results: Results, candidate: str, baseline, failed: dict) -> RuleVerdict:
    name = rule_text(rule)
    suite, metric = rule.metric.split(".", 1)
    nan = math.nan
    if suite in failed:
        return _verdict(name, False, nan, nan, nan, nan, f"suite failed: {failed[suite]}")
    values = _values(results, candidate, suite, metric)
    if values.empty:
        return _verdict(name, False, nan, nan, nan, nan, f"no {rule.metric} results for {candidate}")
    est = mean_estimate(values.to_numpy())
    low, high = est.interval(0.05)
    if n_nan := int(values.isna().sum()):
        return _verdict(name, False, nan, nan, nan, nan, f"{n_nan} NaN item(s) of {len(values)} for {candidate}")
    if len(values) < rule.min_items:
        return _verdict(name, False, est.value, low, high, nan if rule.threshold is None else rule.threshold,
                        f"{len(values)} items for {candidate}; the rule needs {rule.min_items}")
    higher = rule.op == ">="
    if rule.threshold is not None:
        tested = (low if higher else high) if rule.mode == "confident" else est.value
        what = ("95% CI lower end" if higher else "95% CI upper end") if rule.mode == "confident" else "mean"
        if math.isnan(tested):
            return _verdict(name, False, est.value, low, high, rule.threshold, f"no interval ({getattr(est, 'why', est.method)})")
        ok = tested >= rule.threshold if higher else tested <= rule.threshold
        return _verdict(name, ok, est.value, low, high, rule.threshold, f"{what} {tested:.4f} on {len(values)} items")
    if baseline is None:
        raise UserError(f"rule {rule.metric}: a regression rule needs --baseline")
    base_results, base_name = baseline
    base_values = _values(base_results, base_name, suite, metric)
    if base_values.empty:
        return _verdict(name, False, est.value, low, high, nan, f"baseline {base_name} has no {rule.metric} results")
    if n_nan := int(base_values.isna().sum()):
        return _verdict(name, False, est.value, low, high, nan, f"{n_nan} NaN item(s) of {len(base_values)} for baseline {base_name}")
    shared = len(values.index.intersection(base_values.index))
    base_mean = float(base_values.mean())
    limit = base_mean - rule.max_regression if higher else base_mean + rule.max_regression
    if shared < rule.min_items:
        return _verdict(name, False, est.value, low, high, limit, f"{shared} items shared with baseline {base_name} "
                        f"({len(values)} and {len(base_values)} scored); the rule needs {rule.min_items}")
    if rule.mode == "point":
        ok = est.value >= limit if higher else est.value <= limit
        return _verdict(name, ok, est.value, low, high, limit, f"baseline {base_name} = {base_mean:.4f}")
    diff = difference_estimate(values, base_values)
    d_low, d_high = diff.interval(0.05)
    if math.isnan(d_low):
        return _verdict(name, False, est.value, low, high, limit, f"no interval for the difference ({getattr(diff, 'why', diff.method)})")
    # Non-inferiority: the whole interval of (candidate - baseline) within the allowed regression.
    ok = d_low >= -rule.max_regression if higher else d_high <= rule.max_regression
    return _verdict(name, ok, est.value, low, high, limit,
                    f"paired diff vs {base_name} {diff.value:+.4f} [{d_low:+.4f}, {d_high:+.4f}] on {shared} items")


def write_junit(path: Path, verdicts: list[RuleVerdict], candidate: str) -> None:
    failures = sum(not v.passed for v in verdicts)
    suite = ET.Element("testsuite", name=f"harness-gate.{candidate}", tests=str(len(verdicts)), failures=str(failures), errors="0")
    for v in verdicts:
        case = ET.SubElement(suite, "testcase", classname="harness.gate", name=v.rule)
        if not v.passed:
            ET.SubElement(case, "failure", message=f"value {v.value:.4f} [{v.ci_low:.4f}, {v.ci_high:.4f}] vs {v.threshold:.4f}: {v.detail}")
    root = ET.Element("testsuites", tests=str(len(verdicts)), failures=str(failures))
    root.append(suite)
    atomic_write(path, ET.tostring(root, encoding="utf-8", xml_declaration=True))


def markdown(verdicts: list[RuleVerdict], candidate: str) -> str:
    ok = all(v.passed for v in verdicts)
    lines = [f"### harness gate: {candidate} — {'PASS' if ok else 'FAIL'}", "",
             "| rule | value | 95% CI | threshold | verdict | detail |", "|---|---|---|---|---|---|"]
    for v in verdicts:
        lines.append(f"| {v.rule} | {v.value:.4f} | [{v.ci_low:.4f}, {v.ci_high:.4f}] | {v.threshold:.4f} | "
                     f"{'pass' if v.passed else '**FAIL**'} | {v.detail} |")
    return "\n".join(lines) + "\n"


def write_outputs(outcome: GateOutcome, junit: Path | None, summary: Path | None, json_path: Path | None) -> None:
    verdicts, candidate = outcome.verdicts, outcome.candidate
    if junit:
        write_junit(junit, verdicts, candidate)
    md = markdown(verdicts, candidate)
    if summary:
        atomic_write(summary, md)
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a") as fh:
            fh.write(md)
    if json_path:
        documents.write(json_path, GateVerdictDoc(candidate=candidate, baseline=outcome.baseline, passed=outcome.passed,
                                                  rules=verdicts))


@dataclass
class GateOutcome:
    candidate: str
    baseline: str | None
    verdicts: list[RuleVerdict]
    promotion: ChampionDoc | None = None  # champion.json's content, when promoted
    promotion_error: str | None = None  # why a requested promotion failed

    @property
    def passed(self) -> bool:
        return all(v.passed for v in self.verdicts)


@dataclass
class GateOutputs:
    junit: Path | None = None
    summary: Path | None = None
    json: Path | None = None


def run(cfg: GateConfig, results: Results, candidate: str | None, baseline: str | None, outputs: GateOutputs,
        promote: bool) -> GateOutcome:
    """The whole gate: resolve who is compared with whom, check every rule, write the outputs, and
    (only if every rule passed and `promote`) make the candidate the champion."""
    candidate = resolve_candidate(results, candidate)
    base = resolve_baseline(results, baseline, candidate)
    outcome = GateOutcome(candidate, base[1] if base else None, check(cfg, results, candidate, base))
    write_outputs(outcome, outputs.junit, outputs.summary, outputs.json)
    if outcome.passed and promote:
        try:
            outcome.promotion = make_champion(results.name, candidate, results.adapter(candidate),
                                              results.items[results.items.candidate == candidate], results.scores_file(candidate),
                                              headline_scores(results, candidate))
        except Exception as err:  # noqa: BLE001 - a pipeline must see a failed promotion, as a result, not a traceback
            outcome.promotion_error = f"{type(err).__name__}: {err}"
    return outcome
