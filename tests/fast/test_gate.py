"""`harness gate` on result directories in the exact format `harness eval` writes."""

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from conftest import RULES, bern, gate_study, run_cli, write_results


def gate(tmp_path, results, mode="point", *extra):
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES % {"mode": mode})
    junit = tmp_path / "junit.xml"
    proc = run_cli("gate", "--rules", str(rules), "--results", str(results), "--junit", str(junit),
                   "--summary", str(tmp_path / "summary.md"), "--json", str(tmp_path / "verdict.json"), *extra)
    return proc, junit


@pytest.fixture()
def good(tmp_path):
    mmlu = bern(0.5, 300, 1)
    return write_results(tmp_path / "good", {
        "base": {"extraction": {"field_f1": np.zeros(200)}, "mmlu": {"acc": mmlu}},
        "r16": {"extraction": {"field_f1": np.clip(np.random.default_rng(2).normal(0.95, 0.05, 200), 0, 1)}, "mmlu": {"acc": mmlu}},
    })


def test_pass_writes_all_outputs(tmp_path, good, monkeypatch):
    step = tmp_path / "step-summary.md"
    step.write_text("earlier step\n")
    proc, junit = gate(tmp_path, good, "confident", "--candidate", "r16")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    root = ET.parse(junit).getroot()
    assert root.get("tests") == "4" and root.get("failures") == "0"
    assert json.loads((tmp_path / "verdict.json").read_text())["passed"] is True
    assert "PASS" in (tmp_path / "summary.md").read_text()


def test_github_step_summary_is_appended(tmp_path, good):
    step = tmp_path / "step.md"
    step.write_text("earlier step\n")
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES % {"mode": "point"})
    proc = run_cli("gate", "--rules", str(rules), "--results", str(good), env={"GITHUB_STEP_SUMMARY": str(step)})
    assert proc.returncode == 0
    text = step.read_text()
    assert text.startswith("earlier step\n") and "harness gate: r16" in text


def test_threshold_failure_counts_in_junit(tmp_path):
    mmlu = bern(0.5, 300, 1)
    res = write_results(tmp_path / "r", {"base": {"extraction": {"field_f1": np.zeros(100)}, "mmlu": {"acc": mmlu}},
                                         "r16": {"extraction": {"field_f1": np.full(100, 0.5)}, "mmlu": {"acc": mmlu}}})
    proc, junit = gate(tmp_path, res)
    assert proc.returncode == 1
    root = ET.parse(junit).getroot()
    assert root.get("failures") == "1"
    failure = root.find(".//testcase/failure")
    assert failure is not None and "0.5000" in failure.get("message")


def test_regression_against_the_base_fails(tmp_path):
    base_acc = bern(0.5, 300, 1)
    worse = base_acc.copy()
    worse[np.flatnonzero(worse == 1)[:60]] = 0  # 60 items the base got right, now wrong
    res = write_results(tmp_path / "r", {"base": {"extraction": {"field_f1": np.zeros(50)}, "mmlu": {"acc": base_acc}},
                                         "r16": {"extraction": {"field_f1": np.ones(50)}, "mmlu": {"acc": worse}}})
    proc, _ = gate(tmp_path, res)
    assert proc.returncode == 1 and "mmlu.acc" in proc.stdout
    verdict = json.loads((tmp_path / "verdict.json").read_text())
    assert [r["passed"] for r in verdict["rules"]] == [True, True, True, False]


def test_confident_mode_fails_a_mean_above_the_threshold_with_a_wide_ci(tmp_path):
    f1 = np.array([1.0] * 25 + [0.0] * 5)  # mean 0.833 > 0.80, but 30 noisy items
    mmlu = bern(0.5, 300, 1)
    res = write_results(tmp_path / "r", {"base": {"extraction": {"field_f1": np.zeros(30)}, "mmlu": {"acc": mmlu}},
                                         "r16": {"extraction": {"field_f1": f1}, "mmlu": {"acc": mmlu}}})
    assert gate(tmp_path, res, "point")[0].returncode == 0
    proc, _ = gate(tmp_path, res, "confident")
    assert proc.returncode == 1
    assert "CI lower end" in json.loads((tmp_path / "verdict.json").read_text())["rules"][2]["detail"]


def test_missing_suite_nan_and_failed_suite_fail_closed(tmp_path):
    mmlu = bern(0.5, 300, 1)
    missing = write_results(tmp_path / "m", {"base": {"mmlu": {"acc": mmlu}}, "r16": {"mmlu": {"acc": mmlu}}})
    assert gate(tmp_path, missing)[0].returncode == 1
    with_nan = write_results(tmp_path / "n", {"base": {"extraction": {"field_f1": np.zeros(20)}, "mmlu": {"acc": mmlu}},
                                              "r16": {"extraction": {"field_f1": np.array([1.0] * 19 + [np.nan])}, "mmlu": {"acc": mmlu}}})
    proc, _ = gate(tmp_path, with_nan)
    assert proc.returncode == 1 and "NaN" in (tmp_path / "summary.md").read_text()
    failed = write_results(tmp_path / "f", {"base": {"extraction": {"field_f1": np.zeros(20)}, "mmlu": {"acc": mmlu}},
                                            "r16": {"extraction": {"field_f1": np.ones(20)}, "mmlu": {"acc": mmlu}}},
                           failures=[{"suite": "extraction", "reason": "EngineDeadError: boom", "candidates": ["base", "r16"]}])
    proc, _ = gate(tmp_path, failed)
    assert proc.returncode == 1 and "EngineDeadError" in (tmp_path / "summary.md").read_text()


def test_bad_input_exits_2(tmp_path, good):
    proc, _ = gate(tmp_path, good, "point", "--candidate", "nope")
    assert proc.returncode == 2 and "--candidate nope" in proc.stderr and "Traceback" not in proc.stderr
    rules = tmp_path / "typo.yaml"
    rules.write_text("rules:\n  - {metric: mmlu.accc, threshold: 0.2}\n")
    proc = run_cli("gate", "--rules", str(rules), "--results", str(good))
    assert proc.returncode == 2 and "unknown metric 'accc'" in proc.stderr
    rules.write_text("rules:\n  - {metric: mmlu.acc, threshhold: 0.2}\n")
    proc = run_cli("gate", "--rules", str(rules), "--results", str(good))
    assert proc.returncode == 2 and "threshhold" in proc.stderr


def test_study_candidates_best_and_trial_n(study_root):
    proc = gate_study(study_root, "--candidate", "best")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads((study_root / "verdict.json").read_text())["candidate"] == "trial-1"
    proc = gate_study(study_root, "--candidate", "trial-2")
    failed = [r["rule"] for r in json.loads((study_root / "verdict.json").read_text())["rules"] if not r["passed"]]
    assert proc.returncode == 1 and failed == ["extraction.field_f1 >= 0.8 [point]"]
    proc = gate_study(study_root, "--candidate", "trial-9")
    assert proc.returncode == 2 and "--candidate trial-9" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("gate", "--rules", "rules.yaml", "--study", "nope", cwd=study_root)
    assert proc.returncode == 2 and "study nope" in proc.stderr


# ---------------------------------------------------------------- claims that must be shown (in-process: check())


def _check(rule: dict, cand: dict, base: dict | None = None):
    """One rule on constructed items: cand/base {suite.metric: values}; returns the rule's verdict."""
    from harness.config import GateConfig
    from harness.select.gate import check
    from harness.store.reading import Results

    def frame(values):
        return {s: {m: np.asarray(v, dtype=float)} for s, m, v in ((k.split(".")[0], k.split(".")[1], v) for k, v in values.items())}

    import tempfile
    from pathlib import Path

    folder = write_results(Path(tempfile.mkdtemp()) / "r", {"cand": frame(cand), **({"base": frame(base)} if base else {})})
    res = Results.load(folder)
    return check(GateConfig(rules=[rule]), res, "cand", (res, "base") if base else None)[0]


def test_confident_regression_is_non_inferiority():
    base = np.array([1.0] * 12 + [0.0] * 8)  # 0.60 on a 20-item guard
    worse = base.copy()
    worse[:3] = 0.0  # 0.45: three items lost
    v = _check({"metric": "guard.acc", "max_regression": 0.05, "mode": "confident"}, {"guard.acc": worse}, {"guard.acc": base})
    assert not v.passed and "paired diff" in v.detail
    same = _check({"metric": "guard.acc", "max_regression": 0.05, "mode": "confident"}, {"guard.acc": base}, {"guard.acc": base})
    assert not same.passed  # 20 items cannot show a regression under 0.05, even with nothing lost
    big = np.tile(base, 100)  # 2000 identical items can
    assert _check({"metric": "guard.acc", "max_regression": 0.05, "mode": "confident"}, {"guard.acc": big}, {"guard.acc": big}).passed
    # Fewer items make passing harder: the same shares on 10x the items pass where 20 items fail.
    assert _check({"metric": "guard.acc", "max_regression": 0.05, "mode": "point"}, {"guard.acc": base}, {"guard.acc": base}).passed


def test_confident_threshold_needs_the_interval_above_it_and_enough_items():
    one = _check({"metric": "t.acc", "threshold": 0.8, "mode": "confident", "min_items": 1}, {"t.acc": [1.0]})
    assert not one.passed and one.ci_low < 0.8  # one item at 1.0 is no evidence of >= 0.8
    few = _check({"metric": "t.acc", "threshold": 0.8, "mode": "point"}, {"t.acc": [1.0] * 5})
    assert not few.passed and "5 items" in few.detail and "needs 10" in few.detail
    many = _check({"metric": "t.acc", "threshold": 0.8, "mode": "confident"}, {"t.acc": [1.0] * 60})
    assert many.passed and many.ci_high - many.ci_low > 0


def test_lower_is_better_rules():
    wer = np.linspace(0.05, 0.15, 200)
    assert _check({"metric": "asr.wer", "op": "<=", "threshold": 0.2, "mode": "confident"}, {"asr.wer": wer}).passed
    assert not _check({"metric": "asr.wer", "op": "<=", "threshold": 0.1, "mode": "confident"}, {"asr.wer": wer}).passed
    noisy = wer + np.random.default_rng(0).normal(0, 0.01, 200)
    assert _check({"metric": "asr.wer", "op": "<=", "max_regression": 0.02, "mode": "confident"}, {"asr.wer": noisy}, {"asr.wer": wer}).passed
    assert not _check({"metric": "asr.wer", "op": "<=", "max_regression": 0.02, "mode": "confident"},
                      {"asr.wer": noisy + 0.03}, {"asr.wer": wer}).passed


def test_items_shared_with_the_baseline_and_nans_on_either_side():
    cand = {"t.acc": [1.0] * 30}
    v = _check({"metric": "t.acc", "max_regression": 0.5, "mode": "point"}, cand, {"t.acc": [1.0] * 30})
    assert v.passed
    nan_base = _check({"metric": "t.acc", "max_regression": 0.5, "mode": "point"}, cand, {"t.acc": [1.0] * 29 + [np.nan]})
    assert not nan_base.passed and "NaN" in nan_base.detail and "baseline" in nan_base.detail
    nan_cand = _check({"metric": "t.acc", "threshold": 0.1, "mode": "point"}, {"t.acc": [1.0] * 29 + [np.nan]})
    assert not nan_cand.passed and "NaN" in nan_cand.detail


def test_one_shared_item_is_not_a_comparison(tmp_path):
    from harness.config import GateConfig
    from harness.select.gate import check
    from harness.store.reading import Results

    a = write_results(tmp_path / "a", {"cand": {"t": {"acc": np.ones(30)}}})
    b = write_results(tmp_path / "b", {"base": {"t": {"acc": np.ones(30)}}})
    import pandas as pd

    items = pd.read_parquet(b / "items.parquet")
    items["item_id"] = [f"other-{i}" for i in range(29)] + ["t-0"]  # one id in common
    items.to_parquet(b / "items.parquet")
    v = check(GateConfig(rules=[{"metric": "t.acc", "max_regression": 0.1, "mode": "confident"}]), Results.load(a), "cand",
              (Results.load(b), "base"))[0]
    assert not v.passed and "1 items shared" in v.detail


def test_every_baseline_spelling_compares_against_the_named_results(tmp_path, good):
    """--baseline trial-N / NAME (same results), DIR and DIR:NAME (another results directory), champion:
    the regression rule's verdict follows the baseline named."""
    stronger = write_results(tmp_path / "old", {"sharp": {"extraction": {"field_f1": np.ones(200)}, "mmlu": {"acc": np.ones(300)}},
                                                 "dull": {"extraction": {"field_f1": np.zeros(200)}, "mmlu": {"acc": np.zeros(300)}}})
    verdicts = {}
    for baseline in ("base", f"{stronger}:sharp", f"{stronger}:dull", str(stronger)):
        proc, _ = gate(tmp_path, good, "point", "--candidate", "r16", "--baseline", baseline)
        doc = json.loads((tmp_path / "verdict.json").read_text())
        verdicts[baseline] = (proc.returncode, doc["baseline"], doc["rules"][-1]["passed"])
    assert verdicts["base"] == (0, "base", True)  # same MMLU items as the base: no regression
    assert verdicts[f"{stronger}:sharp"] == (1, "sharp", False)  # every MMLU item right before: a regression
    assert verdicts[f"{stronger}:dull"] == (0, "dull", True)
    assert verdicts[str(stronger)][1] == "sharp"  # DIR alone: its first non-base candidate
    # --baseline champion before any promotion is a clear error, not a silent fallback to the base
    proc, _ = gate(tmp_path, good, "point", "--candidate", "r16", "--baseline", "champion")
    assert proc.returncode == 2 and "--baseline champion: no " in proc.stderr and "--promote" in proc.stderr


def test_a_study_trial_is_a_baseline_by_its_trial_name(study_root):
    """trial-1 (0.95) against trial-2 (0.60) and back: only the second regresses."""
    (study_root / "rules.yaml").write_text("rules:\n  - {metric: extraction.field_f1, max_regression: 0.05, mode: point}\n")
    forward = gate_study(study_root, "--candidate", "trial-1", "--baseline", "trial-2")
    back = gate_study(study_root, "--candidate", "trial-2", "--baseline", "trial-1")
    assert forward.returncode == 0 and back.returncode == 1, forward.stderr + back.stderr
    doc = json.loads((study_root / "verdict.json").read_text())
    assert doc["candidate"] == "trial-2" and doc["baseline"] == "trial-1"
    assert doc["rules"][0]["value"] == pytest.approx(0.60) and doc["rules"][0]["threshold"] == pytest.approx(0.90)  # trial-1 less 0.05
