"""The metrics that grade an item."""

from harness.score.metrics import json_exact_match, json_field_f1, rouge_l


def test_json_metrics_give_partial_credit():
    ref = '{"type": "invoice", "number": "INV-1", "total": 12.5}'
    assert json_field_f1('{"type": "invoice", "number": "INV-1", "total": 12.5}', ref) == 1.0
    assert json_exact_match('Sure: {"total": 12.5, "number": "INV-1", "type": "Invoice"}', ref) == 1.0
    assert abs(json_field_f1('{"type": "invoice", "number": "INV-2"}', ref) - 0.4) < 1e-9
    assert json_field_f1("no json here", ref) == 0.0
    assert rouge_l("a b c d", "a b x d") == 0.75
