"""Suites as registered kinds: every kind a config can name is registered, and the shipped suites
load by name from any directory with their own kind."""

import typing

import pytest
from conftest import run_cli

from harness.config import SuiteConfig
from harness.score.suites import KINDS, SHIPPED, find_suite_file, load_suite


def test_every_builtin_a_config_can_name_has_a_registered_kind():
    builtins = {a for a in typing.get_args(SuiteConfig.model_fields["builtin"].annotation) if a is not type(None)}
    names = {v for a in builtins for v in typing.get_args(a)} or builtins
    assert names | {"task"} == set(KINDS.names())


@pytest.mark.parametrize(("ref", "kind", "headline"), [("mmlu", "mmlu", "acc"), ("humaneval", "humaneval", "pass@1"),
                                                        ("extraction", "task", "field_f1")])
def test_shipped_suites_load_by_name_from_any_directory(ref, kind, headline, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert find_suite_file(ref).is_relative_to(SHIPPED)
    suite = load_suite(ref, 12)
    assert suite.kind.name == kind and suite.headline == headline
    assert len(suite.rows) == 12 and len({r["id"] for r in suite.rows}) == 12


def test_a_limit_never_changes_an_items_identity_and_the_scope_applies_the_suites_own_limit():
    small, large = load_suite("mmlu", 20), load_suite("mmlu", 200)
    assert small.version == large.version
    assert {r["id"] for r in small.rows} <= {r["id"] for r in large.rows}
    subjects = {r["subject"] for r in small.rows}
    assert len(subjects) == 20, "MMLU subsets are drawn round-robin over subjects"
    extraction = load_suite("extraction", scope="sweep")
    assert len(extraction.rows) == extraction.config.limit.sweep


def test_every_name_a_config_can_give_has_a_registered_implementation():
    """The sweep and suite files name samplers, trackers and metrics; each name has exactly one registry entry."""
    from harness.config import MetricSpec, Sampler, SweepConfig
    from harness.score.metrics import METRICS
    from harness.sweep.space import SAMPLERS
    from harness.sweep.trackers import TRACKERS

    def literal(annotation):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return {v for a in args for v in (typing.get_args(a) or [a])}

    assert literal(Sampler.model_fields["name"].annotation) == set(SAMPLERS.names())
    assert literal(MetricSpec.model_fields["name"].annotation) == set(METRICS.names())
    assert literal(typing.get_args(SweepConfig.model_fields["trackers"].annotation)[0]) == set(TRACKERS.names()) | {"none"}


def test_a_suite_file_setting_another_kinds_option_is_refused_naming_the_field(tmp_path):
    """`mode` is HumanEval's; an MMLU suite that sets it would silently ignore it."""
    from harness.errors import UserError

    (tmp_path / "m.yaml").write_text("name: m\nbuiltin: mmlu\nformat: cloze\nmode: chat\n")
    with pytest.raises(UserError, match=r"m\.yaml: mode: not an option of mmlu suites \(they take: format, num_fewshot\)"):
        load_suite(str(tmp_path / "m.yaml"), 2)
    proc = run_cli("validate", str(tmp_path / "m.yaml"))
    assert proc.returncode == 2 and "mode: not an option of mmlu suites" in proc.stderr and "Traceback" not in proc.stderr
