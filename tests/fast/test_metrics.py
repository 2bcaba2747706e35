"""The metrics that grade an item."""

from conftest import REPO

from harness.score.metrics import json_exact_match, json_field_f1, rouge_l


def test_json_metrics_give_partial_credit():
    ref = '{"type": "invoice", "number": "INV-1", "total": 12.5}'
    assert json_field_f1('{"type": "invoice", "number": "INV-1", "total": 12.5}', ref) == 1.0
    assert json_exact_match('Sure: {"total": 12.5, "number": "INV-1", "type": "Invoice"}', ref) == 1.0
    assert abs(json_field_f1('{"type": "invoice", "number": "INV-2"}', ref) - 0.4) < 1e-9
    assert json_field_f1("no json here", ref) == 0.0
    assert rouge_l("a b c d", "a b x d") == 0.75


def metric(**spec):
    """A metric as a suite file's `metrics:` entry names it (through the registry)."""
    from harness.config import MetricSpec
    from harness.score.metrics import resolve

    return resolve(MetricSpec(**spec), REPO)


def test_exact_match_is_whole_and_case_sensitive_after_trimming():
    exact = metric(name="exact_match")
    assert exact(" Paris\n", "Paris") == 1.0
    assert exact("paris", "Paris") == 0.0 and exact("Paris.", "Paris") == 0.0 and exact("Paris is the capital", "Paris") == 0.0


def test_contains_finds_the_reference_anywhere_ignoring_case():
    has = metric(name="contains")
    assert has("The answer is PARIS, of course.", " paris ") == 1.0
    assert has("Par is", "paris") == 0.0 and has("", "paris") == 0.0


def test_regex_matches_the_pattern_and_the_reference_when_one_is_given():
    number = metric(name="regex", pattern=r"\d+(\.\d+)?")
    assert number("total: 42.50 EUR", "42.50") == 1.0
    assert number("total: 42.50 EUR", "41") == 0.0  # found a number, not the reference
    assert number("total: 42.50 EUR", "") == 1.0  # no reference: the pattern alone decides
    assert number("no digits here", "") == 0.0
