"""Configs and CLI arguments: validation is strict, one line per problem, and exits 2 before any work."""

import pytest
from conftest import REPO, run_cli

from harness.errors import UserError
from harness.models import resolve_base


def test_validate_names_wrong_type_and_unknown_key(tmp_path):
    sweep = tmp_path / "bad-sweep.yaml"
    sweep.write_text(
        """
study: s1
train: {data: train.jsonl}
space:
  lora_r: {type: categorical, choices: [4, 8]}
  learning_rate: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}
  n_samples: {type: categorical, choices: [64, 128]}
suites: [{suite: mmlu}]
budget: {n_trials: many}
samplr: {name: tpe}
"""
    )
    proc = run_cli("validate", str(sweep))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert any(str(sweep) in line and "budget.n_trials" in line and "integer" in line for line in lines), lines
    assert any(str(sweep) in line and "samplr" in line and "unknown field" in line for line in lines), lines
    assert len(lines) == 2, lines


def test_sweep_numbers_written_without_a_dot_stay_numbers(tmp_path):
    from harness import config

    sweep = tmp_path / "s.yaml"
    sweep.write_text("""
study: s1
train: {data: train.jsonl}
space:
  lora_r: {type: categorical, choices: [4, 8]}
  learning_rate: {type: categorical, choices: [3e-4, 1e-3]}
  n_samples: {type: categorical, choices: [64, 128]}
suites: [{suite: mmlu}]
multi_fidelity: {enabled: true, min_samples: 16, reduction_factor: 2}
""")
    cfg = config.load(sweep, "sweep")
    assert cfg.space["learning_rate"].choices == [3e-4, 1e-3]  # YAML 1.1 alone would give the strings "3e-4", "1e-3"
    assert cfg.rungs() == [16, 32, 64, 128]


def test_validate_accepts_the_shipped_configs():
    files = sorted(map(str, [*REPO.glob("suites/*.yaml"), *REPO.glob("suites/*/suite.yaml"), *REPO.glob("sweeps/*.yaml")]))
    assert files, "the repo ships suite and sweep configs"
    proc = run_cli("validate", *files)
    assert proc.returncode == 0, proc.stderr


def test_validate_unreadable_yaml(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("rules: [\n  - metric: x\n  bad")
    proc = run_cli("validate", str(bad))
    assert proc.returncode == 2
    assert str(bad) in proc.stderr and "not valid YAML" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("spec", ["/nonexistent/model.gguf", "./no/such/dir/really", "not a model id"])
def test_bad_base_spec_is_a_user_error(spec):
    with pytest.raises(UserError, match="--base"):
        resolve_base(spec)


def test_the_sweeps_train_block_is_derived_from_the_training_settings():
    from harness.config import SWEEP_SETS, SweepTrain, TrainConfig

    sweep_only = {"init"}  # where a dpo trial starts: decided per trial by the sweep
    assert set(SweepTrain.model_fields) - sweep_only == set(TrainConfig.model_fields) - set(SWEEP_SETS)
    for name, field in SweepTrain.model_fields.items():
        if name in sweep_only:
            continue
        mine = TrainConfig.model_fields[name]
        assert (field.annotation, field.metadata, field.default) == (mine.annotation, mine.metadata, mine.default), name


def test_harness_train_has_one_flag_per_training_setting():
    from harness.config import TrainConfig

    proc = run_cli("train", "--help", env={"COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    for name in TrainConfig.model_fields:
        assert f"--{name.replace('_', '-')}" in proc.stdout, name


@pytest.mark.parametrize(("train", "space", "expect"), [
    ("lora_alpha: -1", "", "train.lora_alpha: Input should be greater than 0"),
    ("", "lora_r: {type: categorical, choices: [0, 8]}", "space.lora_r: 0: Input should be greater than 0"),
    ("", 'learning_rate: {type: categorical, choices: ["fast"]}', "space.learning_rate: 'fast'"),
    ("", "n_samples: {type: int, low: -5, high: 10}", "space.n_samples: -5"),
    ("", "lora_dropout: {type: float, low: 0.5, high: 0.1}", "space.lora_dropout: low 0.5 > high 0.1"),
    ("", "method: {type: categorical, choices: [sft, ppo]}", "space.method: 'ppo': Input should be 'sft', 'dpo' or 'orpo'"),
    ("", "beta: {type: float, low: 0, high: 0.5}", "space.beta: 0"),
    ("init: best_sft", "method: {type: categorical, choices: [sft, orpo]}", "train.init: best_sft starts dpo trials from sft ones"),
    ("", "method: {type: categorical, choices: [sft]}\nmerge: {top_k: 1}", "merge.top_k: Input should be greater than or equal to 2"),
    ("", "method: {type: categorical, choices: [sft]}\nmerge: {methods: [average]}", "merge.methods.0: Input should be"),
])
def test_sweep_values_break_the_training_settings_own_rules_at_load(tmp_path, train, space, expect):
    """(The CLI's exit 2 for these is in tests/integration/test_bad_input.py.)"""
    from harness import config

    base_space = {"lora_r": "{type: categorical, choices: [4, 8]}", "learning_rate": "{type: categorical, choices: [1e-3]}",
                  "n_samples": "{type: categorical, choices: [8]}"}
    if space:
        key, value = space.split(": ", 1)
        base_space[key] = value
    sweep = tmp_path / "s.yaml"
    sweep.write_text("study: s\ntrain: {data: train.jsonl" + (f", {train}" if train else "") + "}\nspace:\n"
                     + "".join(f"  {k}: {v}\n" for k, v in base_space.items()) + "suites: [{suite: mmlu}]\n")
    with pytest.raises(UserError) as err:
        config.load(sweep, "sweep")
    assert len(err.value.lines) == 1 and err.value.lines[0].startswith(str(sweep)) and expect in err.value.lines[0], err.value.lines


def test_a_sweep_files_relative_paths_are_relative_to_the_file(tmp_path, monkeypatch):
    from harness import config

    folder = tmp_path / "project" / "sweeps"
    folder.mkdir(parents=True)
    (folder / "s.yaml").write_text("study: s\ntrain: {data: ../data/train.jsonl, preference_data: /abs/prefs.jsonl}\n"
                                   "space: {lora_r: {type: categorical, choices: [4]}, learning_rate: {type: categorical, choices: [0.001]},"
                                   " n_samples: {type: categorical, choices: [8]}}\n"
                                   "suites: [{suite: ../suites/x.yaml}, {suite: mmlu}, {suite: 'lm-eval:t', include_path: [tasks]}]\n"
                                   "artifacts: ../shared\n")
    monkeypatch.chdir(tmp_path)  # the working directory plays no part
    cfg = config.load(folder / "s.yaml", "sweep")
    assert cfg.train.data == folder / "../data/train.jsonl" and str(cfg.train.preference_data) == "/abs/prefs.jsonl"
    assert [s.suite for s in cfg.suites] == [str(folder / "../suites/x.yaml"), "mmlu", "lm-eval:t"]
    assert cfg.suites[2].include_path == [folder / "tasks"] and cfg.artifacts == str(folder / "../shared")


def _adaptive_sweep(tmp_path, sizes: str, extra: str = "", lora: str = "[4]"):
    sweep = tmp_path / "a.yaml"
    sweep.write_text(f"study: a\ntrain: {{data: train.jsonl}}\nspace:\n  lora_r: {{type: categorical, choices: {lora}}}\n"
                     f"  learning_rate: {{type: categorical, choices: [1e-3]}}\n  n_samples: {sizes}\nsuites: [{{suite: mmlu}}]\n{extra}")
    return sweep


def test_adaptive_sizes_are_read_in_the_sweep_files_spelling(tmp_path):
    from harness import config
    from harness.sweep.space import distributions

    cfg = config.load(_adaptive_sweep(tmp_path, "{adaptive: {target: mmlu.acc=0.4, min: 16, max: 512, ratio: 1.5}}"), "sweep")
    assert cfg.adaptive.goal == ("mmlu.acc", 0.4) and cfg.adaptive.ratio == 1.5 and cfg.max_samples() == 512
    dist = distributions(cfg)["n_samples"]
    assert (dist.low, dist.high, dist.log) == (16, 512, True)


@pytest.mark.parametrize(("sizes", "extra", "lora", "expect"), [
    ("{adaptive: {min: 16, max: 64}}", "", "[4]", "max must be at least 8x min"),
    ("{adaptive: {min: 16, max: 512}}", "", "[4, 8]", "give lora_r one value"),
    ("{adaptive: {min: 16, max: 512}}", "sampler: {name: grid}\n", "[4]", "not with multi_fidelity or the grid sampler"),
    ("{adaptive: {min: 16, max: 512}}", "replicates: 3\n", "[4]", "no replicates"),
    ("{adaptive: {target: mmlu.acc=1.5, max: 512}}", "", "[4]", "target mmlu.acc=1.5: the value must be within (0, 1]"),
    ("{adaptive: {target: acc, max: 512}}", "", "[4]", "space.n_samples.adaptive.target"),
])
def test_adaptive_sizes_refuse_what_they_cannot_do(tmp_path, sizes, extra, lora, expect):
    from harness import config

    with pytest.raises(UserError) as err:
        config.load(_adaptive_sweep(tmp_path, sizes, extra, lora), "sweep")
    assert len(err.value.lines) == 1 and expect in err.value.lines[0], err.value.lines
