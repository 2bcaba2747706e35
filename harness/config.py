"""Typed configs for the three YAML files a user writes: suites, sweeps and gate rules.

Every model forbids unknown keys (a typo must not be silently ignored). `load` turns pydantic's
errors into one line per problem: file, field path, what was expected.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from harness.errors import UserError
from harness.runtime.files import read_text
from harness.runtime.secrets import masked_userinfo
from harness.store.artifacts import shown_url, url_problem


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- training

Dtype = Literal["auto", "float32", "bfloat16"]


def _comma_list(value):
    # `--target-modules q_proj,v_proj` and `target_modules: q_proj,v_proj` mean a list.
    if isinstance(value, str) and value != "all-linear":
        return [m.strip() for m in value.split(",") if m.strip()]
    return value


class TrainConfig(Strict):
    """One candidate's training settings: THE field list. `harness train`'s options, the sweep's
    `train:` block (`SweepTrain`) and the checks of a sweep's search space all derive from it."""

    data: Annotated[Path, Field(description="training JSONL: {messages: [...]} or {prompt, completion} rows")]
    n_samples: Annotated[int, Field(gt=0, description="train on the first N rows of the file's fixed permutation")]
    lora_r: Annotated[int, Field(gt=0, le=256, description="LoRA rank")] = 16
    lora_alpha: Annotated[float | None, Field(gt=0, description="LoRA alpha (default: 2 * rank)")] = None
    lora_dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0
    use_dora: Annotated[bool, Field(description="DoRA (weight-decomposed LoRA); vLLM cannot serve it: --backend auto scores it on hf")] = False
    target_modules: Annotated[list[str] | Literal["all-linear"], BeforeValidator(_comma_list),
                              Field(description="'all-linear' or a comma-separated list of module names")] = "all-linear"
    learning_rate: Annotated[float, Field(gt=0, lt=1)] = 2e-4
    epochs: Annotated[float, Field(gt=0)] = 1.0
    max_steps: Annotated[int | None, Field(gt=0, description="stop after this many optimizer steps")] = None
    max_seq_len: Annotated[int, Field(gt=8)] = 512
    batch_size: Annotated[int, Field(gt=0)] = 8
    grad_accum: Annotated[int, Field(gt=0)] = 1
    warmup_ratio: Annotated[float, Field(ge=0, lt=1, description="share of the steps spent warming up the learning rate")] = 0.0
    seed: int = 0
    dtype: Annotated[Dtype, Field(description="auto (bf16 where the CPU/GPU has it) | float32 | bfloat16")] = "auto"
    qlora: Annotated[bool, Field(description="4-bit base via bitsandbytes (CUDA only)")] = False
    padding_free: Annotated[bool, Field(description="sft: each batch's rows in one sequence, no padding, position ids "
                                                    "restarting per row (the same loss); pays when row lengths differ widely")] = False
    method: Annotated[Literal["sft", "dpo", "orpo"],
                      Field(description="sft (supervised) | dpo | orpo (preference pairs: prompt, chosen, rejected)")] = "sft"
    beta: Annotated[float, Field(gt=0, description="dpo: how hard the reference pulls (KL); orpo: weight of the odds-ratio term")] = 0.1
    preference_data: Annotated[Path | None, Field(description="dpo/orpo: JSONL of {prompt, chosen, rejected} rows (default: --data)")] = None
    init_adapter: Annotated[Path | None, Field(description="start from this adapter's weights (e.g. SFT, then DPO against it)")] = None

    @property
    def alpha(self) -> float:
        return self.lora_alpha if self.lora_alpha is not None else 2.0 * self.lora_r

    @property
    def uses_pairs(self) -> bool:
        return self.method != "sft"

    @property
    def training_file(self) -> Path:
        """The rows this method trains on: preference pairs for dpo/orpo, prompt/completion rows for sft."""
        return (self.preference_data or self.data) if self.uses_pairs else self.data


# A sweep searches these (lora_r, learning_rate, n_samples are required in `space`) or sets them per
# trial (seed = the sweep's seed + the trial number); every other training field is fixed in `train:`.
SWEEP_SETS = ("n_samples", "lora_r", "learning_rate", "seed")

SweepTrain = create_model(
    "SweepTrain",
    __base__=Strict,
    __doc__="The fixed training settings of a sweep (TrainConfig less what the sweep sets per trial).",
    **{name: (field.annotation, field) for name, field in TrainConfig.model_fields.items() if name not in SWEEP_SETS},
    # Sweep-only: a dpo trial starts from the best complete sft trial's adapter (SFT then DPO), else from the base.
    init=(Literal["base", "best_sft"], Field("base", description="dpo trials: start from the base, or the best sft trial's adapter")),
)

MERGE_METHODS = ("linear", "cat", "svd", "ties", "ties_svd", "dare_ties", "dare_linear", "dare_ties_svd", "dare_linear_svd",
                 "magnitude_prune", "magnitude_prune_svd")


class MergeSpec(Strict):
    """After the budget: merged candidates of the top_k complete trials, one per method, scored like any trial."""

    top_k: Annotated[int, Field(ge=2)] = 2
    methods: Annotated[list[Literal[MERGE_METHODS]], Field(min_length=1)] = ["cat"]  # type: ignore[valid-type]
    density: Annotated[float, Field(gt=0, le=1)] = 0.5  # ties/dare/magnitude_prune: share of each delta's entries kept


def train_field_errors(name: str, value) -> list[str]:
    """Why `value` is not a valid TrainConfig.<name> (empty if it is): the field's own constraints."""
    field = TrainConfig.model_fields[name]
    try:
        TypeAdapter(Annotated[field.annotation, *field.metadata] if field.metadata else field.annotation).validate_python(value)
    except ValidationError as err:
        return [e["msg"] for e in err.errors()]
    return []


# ---------------------------------------------------------------- suites

MetricName = Literal["exact_match", "json_exact_match", "json_field_f1", "regex", "contains", "rouge_l"]


class SuiteData(Strict):
    path: Path  # JSONL, relative to the suite file
    id_field: str = "id"


class SuitePrompt(Strict):
    """Either chat messages (the base model's chat template applies) or a plain template."""

    system: str | None = None
    user: str | None = None  # chat: the user turn, a str.format template over the row
    template: str | None = None  # plain completion prompt, a str.format template over the row

    @model_validator(mode="after")
    def _one_style(self):
        if (self.user is None) == (self.template is None):
            raise ValueError("give exactly one of 'user' (chat) or 'template' (plain)")
        if self.system is not None and self.user is None:
            raise ValueError("'system' needs 'user' (chat style)")
        return self


class Generation(Strict):
    max_tokens: Annotated[int, Field(gt=0, le=8192)] = 256
    stop: list[str] = []
    temperature: Annotated[float, Field(ge=0)] = 0.0
    n: Annotated[int, Field(gt=0)] = 1


class MetricSpec(Strict):
    name: MetricName | None = None
    function: str | None = None  # "module_or_file.py:function" for a custom metric
    pattern: str | None = None  # for regex
    as_name: str | None = Field(None, alias="as")

    @model_validator(mode="after")
    def _one_kind(self):
        if (self.name is None) == (self.function is None):
            raise ValueError("give exactly one of 'name' or 'function'")
        if self.name == "regex" and not self.pattern:
            raise ValueError("metric 'regex' needs 'pattern'")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as err:
                raise ValueError(f"pattern {self.pattern!r} is not a valid regular expression ({err})") from None
        if self.function is not None and not re.match(r"^[^:]+:[A-Za-z_][A-Za-z0-9_]*$", self.function):
            raise ValueError(f"function {self.function!r}: expected 'module:function' or 'file.py:function'")
        return self

    @property
    def key(self) -> str:
        return self.as_name or self.name or self.function.rsplit(":", 1)[-1]


class Limits(Strict):
    sweep: Annotated[int, Field(gt=0)] | None = None  # items scored per trial in a sweep
    full: Annotated[int, Field(gt=0)] | None = None  # items scored by a plain eval (None: all)


class SuiteConfig(Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]
    description: str = ""
    builtin: Literal["mmlu", "humaneval", "lm-eval"] | None = None
    # builtin options
    task: str | None = None  # lm-eval: a task or group name lm-eval's TaskManager knows
    include_path: list[Path] = []  # lm-eval: directories of task YAMLs in lm-eval's format (relative to this file)
    format: Literal["cloze", "letter"] | None = None  # mmlu
    num_fewshot: Annotated[int, Field(ge=0, le=10)] = 0
    mode: Literal["completion", "chat"] | None = None  # humaneval
    # humaneval: where generated code runs. Default: bubblewrap, and no run at all without it;
    # "rlimit-only" (resource limits, no filesystem or network isolation) only when asked for.
    sandbox: Literal["bubblewrap", "rlimit-only"] | None = None
    # task suites
    data: SuiteData | None = None
    prompt: SuitePrompt | None = None
    target: str | None = None  # str.format template over the row giving the reference
    generation: Generation = Generation()
    metrics: list[MetricSpec] = []
    headline: str | None = None
    limit: Limits = Limits()
    seed: int = 1234

    @model_validator(mode="after")
    def _complete(self):
        if self.builtin == "lm-eval" and not self.task:
            raise ValueError("builtin lm-eval needs 'task': the name of an lm-eval task or group")
        if self.builtin != "lm-eval" and (self.task or self.include_path):
            raise ValueError("'task' and 'include_path' are for lm-eval tasks (builtin: lm-eval)")
        if self.builtin is None:
            missing = [f for f in ("data", "prompt", "target") if getattr(self, f) is None]
            if missing:
                raise ValueError(f"a task suite needs {', '.join(missing)} (or 'builtin')")
            if not self.metrics:
                raise ValueError("a task suite needs at least one metric")
            keys = [m.key for m in self.metrics]
            if self.headline is not None and self.headline not in keys:
                raise ValueError(f"headline {self.headline!r} is not one of the metrics {keys}")
        return self


# ---------------------------------------------------------------- sweeps


NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


class CategoricalParam(Strict):
    type: Literal["categorical"]
    choices: Annotated[list[int | float | str | bool], Field(min_length=1)]

    @field_validator("choices", mode="before")
    @classmethod
    def _numbers(cls, choices):
        # YAML 1.1 reads `3e-4` (no dot) as a string; a learning rate must stay a number.
        if not isinstance(choices, list):
            return choices
        return [float(c) if isinstance(c, str) and NUMBER.match(c) else c for c in choices]


class IntParam(Strict):
    type: Literal["int"]
    low: int
    high: int
    step: Annotated[int, Field(gt=0)] = 1
    log: bool = False


class FloatParam(Strict):
    type: Literal["float"]
    low: float
    high: float
    log: bool = False


class AdaptiveSizes(Strict):
    """`n_samples: {adaptive: {target: SUITE.METRIC=VALUE, min: 16, max: 1024}}`: the sweep chooses each
    next training size itself (forecast/planning.py): after min, 2x, 4x and 8x min, the size that most
    narrows the forecast for its cost (of the samples `target` needs; without a target, of the
    score at `max`), until that interval is within `ratio` (hi/lo of the samples needed) or `width`
    (of the score at max), or the budget is spent. It traces one configuration: every other
    parameter of the space has one value."""

    type: Literal["adaptive"] = "adaptive"
    target: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+\.[A-Za-z0-9_,-]+=[0-9.eE+-]+$")] | None = None
    min: Annotated[int, Field(gt=0)] = 16
    max: Annotated[int, Field(gt=0)]
    ratio: Annotated[float, Field(gt=1)] = 2.0
    width: Annotated[float, Field(gt=0, lt=1)] = 0.05

    @model_validator(mode="after")
    def _sizes(self):
        if self.min * 8 > self.max:
            raise ValueError(f"min {self.min} and max {self.max}: max must be at least 8x min (the first four sizes are min, 2x, 4x, 8x)")
        if self.target is not None and not 0 < self.goal[1] <= 1:
            raise ValueError(f"target {self.target}: the value must be within (0, 1]")
        return self

    @property
    def goal(self) -> tuple[str, float]:
        metric, _, value = self.target.rpartition("=")
        return metric, float(value)


Param = Annotated[CategoricalParam | IntParam | FloatParam | AdaptiveSizes, Field(discriminator="type")]


class SweepSuite(Strict):
    suite: str  # a shipped suite's name, a path to a suite YAML, or lm-eval:TASK
    include_path: list[Path] = []  # lm-eval:TASK: directories of task YAMLs in lm-eval's format
    weight: Annotated[float, Field(ge=0)] = 1.0  # 0: scored and reported, not in the objective
    limit: Annotated[int, Field(gt=0)] | None = None
    metric: str | None = None  # default: the suite's headline metric


class Objective(Strict):
    suite: str
    metric: str | None = None
    direction: Literal["maximize", "minimize"] = "maximize"


class Sampler(Strict):
    name: Literal["tpe", "random", "grid", "cmaes", "gp", "nsgaii"] = "tpe"
    seed: int | None = 0


class Pruner(Strict):
    """Which Optuna pruner decides promotions between multi_fidelity rungs (default successive_halving)."""

    name: Literal["none", "median", "successive_halving", "hyperband"] = "none"


class MultiFidelity(Strict):
    """Successive halving over n_samples: every config on few samples, the best fraction promoted.

    Rungs are min_samples * reduction_factor**k, ending with the largest n_samples of the space.
    """

    enabled: bool = False
    min_samples: Annotated[int, Field(gt=0)] = 64
    reduction_factor: Annotated[int, Field(ge=2)] = 3


class Budget(Strict):
    n_trials: Annotated[int, Field(gt=0)] = 8
    timeout_s: Annotated[float, Field(gt=0)] | None = None


class Scoring(Strict):
    """Item-level early stopping of a trial's scoring: items are scored in a fixed, suite-interleaved
    order, tested after `chunk`, 2x, 4x, ... items (early_stop.py), and a trial stops (PRUNED, with
    its reason) once it is shown worse than the best completed trial on the objective over the items
    both have (alpha spent across the looks), from `min_items` on. The base model is never stopped.
    `wilcoxon`, the name of an earlier test (medians, suites in file order), now means `sequential`."""

    early_stop: Literal["none", "sequential", "wilcoxon"] = "none"
    alpha: Annotated[float, Field(gt=0, lt=0.5)] = 0.05

    @field_validator("early_stop")
    @classmethod
    def _renamed(cls, value):
        return "sequential" if value == "wilcoxon" else value
    chunk: Annotated[int, Field(gt=0)] = 25
    min_items: Annotated[int, Field(ge=2)] = 20




class Replicates(Strict):
    """After the budget: the `top` configurations re-trained until each has `seeds` runs (trial n trains
    with seed + n), so the pick and the leaderboard see training-seed noise. `replicates: 3` is short
    for `{seeds: 3}`."""

    seeds: Annotated[int, Field(ge=1)] = 1  # runs per top configuration, the first included; 1: off
    top: Annotated[int, Field(ge=1)] = 2

    @model_validator(mode="before")
    @classmethod
    def _a_count(cls, data):
        return {"seeds": data} if isinstance(data, int) and not isinstance(data, bool) else data


class PickOptions(Strict):
    """How `harness report` picks the candidate to ship (select/pick.py); its flags override these."""

    margin: Annotated[float, Field(ge=0, lt=1)] = 0.02  # delta: how much worse than the best a cheaper pick may be
    alpha: Annotated[float, Field(gt=0, lt=0.5)] = 0.05  # one-sided error of each claim
    confirm: bool = True  # hold out a tenth of each large suite's items to report the pick's score on


STORAGE_SCHEMES = ("sqlite:///", "postgresql://", "postgresql+psycopg2://", "mysql://", "mysql+pymysql://")


class SweepConfig(Strict):
    study: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]
    base: str = "default"
    train: SweepTrain
    space: dict[str, Param]
    suites: Annotated[list[SweepSuite], Field(min_length=1)]
    objectives: list[Objective] = []  # empty: one objective, the weighted sum over `suites`
    sampler: Sampler = Sampler()
    pruner: Pruner = Pruner()
    multi_fidelity: MultiFidelity = MultiFidelity()
    budget: Budget = Budget()
    scoring: Scoring = Scoring()
    pick: PickOptions = PickOptions()
    seed: int = 0
    backend: Literal["hf", "vllm", "auto"] = "hf"
    trackers: list[Literal["mlflow", "neptune", "none"]] = ["mlflow"]
    storage: str | None = None  # default: a journal file under runs/<study>/

    @field_validator("storage")
    @classmethod
    def _known_scheme(cls, url):
        if url is not None and not url.startswith(STORAGE_SCHEMES):
            raise ValueError(f"{url!r}: expected a URL starting with {', '.join(STORAGE_SCHEMES)} (or no storage: a journal file)")
        return url

    artifacts: str | None = None  # the artifact store: a directory every machine sees, or s3://bucket/prefix; default runs/<study>/artifacts
    merge: MergeSpec | None = None
    replicates: Replicates = Replicates()

    @field_validator("artifacts")
    @classmethod
    def _a_store(cls, url):
        if url is not None and (problem := url_problem(url)):
            raise ValueError(f"{shown_url(url)!r}: {problem}")
        return url

    @model_validator(mode="before")
    @classmethod
    def _adaptive_form(cls, data):
        """`n_samples: {adaptive: {...}}` is the adaptive sizes' spelling in a sweep file."""
        space = data.get("space") if isinstance(data, dict) else None
        sizes = space.get("n_samples") if isinstance(space, dict) else None
        if isinstance(sizes, dict) and set(sizes) == {"adaptive"} and isinstance(sizes["adaptive"], dict):
            data = {**data, "space": {**space, "n_samples": {"type": "adaptive", **sizes["adaptive"]}}}
        return data

    @model_validator(mode="after")
    def _space(self):
        required = {"lora_r", "learning_rate", "n_samples"}
        if missing := required - self.space.keys():
            raise ValueError(f"space must search {sorted(missing)} (lora_r, learning_rate, n_samples)")
        searchable = set(TrainConfig.model_fields) - {"data", "seed"}
        if unknown := self.space.keys() - searchable:
            raise ValueError(f"space names unknown training parameters {sorted(unknown)}")
        problems = []
        for name, p in self.space.items():
            if p.type == "adaptive":
                if name != "n_samples":
                    raise ValueError(f"space.{name}: adaptive is for n_samples only")
                continue
            if p.type != "categorical" and p.low > p.high:
                problems.append(f"space.{name}: low {p.low} > high {p.high}")
            values = p.choices if p.type == "categorical" else [p.low, p.high]
            problems += [f"space.{name}: {value!r}: {msg}" for value in values for msg in train_field_errors(name, value)]
        if problems:
            raise ValueError("; ".join(problems))
        if not self.objectives and not any(s.weight > 0 for s in self.suites):
            raise ValueError("suites: every weight is 0, so the objective (their weighted sum) would be 0 for every trial")
        if self.adaptive is not None:
            varied = [n for n, p in self.space.items() if n != "n_samples" and not (p.type == "categorical" and len(p.choices) == 1)]
            if varied:
                raise ValueError(f"space.n_samples adaptive traces one configuration: give {', '.join(varied)} one value "
                                 "(a categorical with one choice)")
            if self.multi_fidelity.enabled or self.sampler.name == "grid":
                raise ValueError("space.n_samples adaptive: the sweep chooses the sizes; not with multi_fidelity or the grid sampler")
            if len(self.objectives) > 1 or self.replicates.seeds > 1:
                raise ValueError("space.n_samples adaptive: one objective and no replicates (each size is one run)")
        if self.multi_fidelity.enabled:
            if len(self.objectives) > 1:
                raise ValueError("multi_fidelity: promotion needs one objective (Optuna pruners are single-objective)")
            if self.multi_fidelity.min_samples > self.max_samples():
                raise ValueError(f"multi_fidelity.min_samples {self.multi_fidelity.min_samples} exceeds the largest n_samples {self.max_samples()}")
        elif self.pruner.name != "none":
            raise ValueError(f"pruner {self.pruner.name}: needs multi_fidelity.enabled (trials report scores only per n_samples rung)")
        if self.scoring.early_stop != "none":
            if self.objectives:
                raise ValueError("scoring.early_stop: compares items on the default objective (the weighted sum over suites); "
                                 "remove objectives or early_stop")
            if self.multi_fidelity.enabled:
                raise ValueError("scoring.early_stop and multi_fidelity both stop trials through the study's pruner; use one")
        if self.replicates.seeds > 1 and (len(self.objectives) > 1 or self.multi_fidelity.enabled):
            raise ValueError("replicates: re-trains the top configurations by one objective, each at its full n_samples; "
                             "not with several objectives or multi_fidelity")
        if self.merge is not None and len(self.objectives) > 1:
            raise ValueError("merge: the top_k trials are ranked by one objective; a multi-objective sweep has no such order")
        if "method" in self.space and self.space["method"].type != "categorical":
            raise ValueError("space.method: must be categorical (choices among sft, dpo, orpo)")
        if self.train.init == "best_sft" and not {"sft", "dpo"} <= set(self.methods()):
            raise ValueError("train.init: best_sft starts dpo trials from sft ones; the sweep's methods must include both")
        return self

    def relative_to(self, folder: Path) -> SweepConfig:
        """The file's relative paths (training data, suite files, include paths, the artifact store)
        resolved against `folder`, the sweep file's own: the same rule as a suite file's data."""
        def at(path):
            return path if path is None or Path(path).is_absolute() else folder / path

        train = self.train.model_copy(update={k: at(getattr(self.train, k)) for k in ("data", "preference_data", "init_adapter")})
        suites = [s.model_copy(update={"suite": str(at(s.suite)) if s.suite.endswith((".yaml", ".yml")) else s.suite,
                                       "include_path": [at(p) for p in s.include_path]}) for s in self.suites]
        artifacts = str(at(self.artifacts)) if self.artifacts and "://" not in self.artifacts else self.artifacts
        return self.model_copy(update={"train": train, "suites": suites, "artifacts": artifacts})

    def dora_trials(self) -> bool:
        """Whether some trial may train a DoRA adapter (which the vllm engine cannot score)."""
        p = self.space.get("use_dora")
        return bool(self.train.use_dora) if p is None else p.type != "categorical" or True in p.choices

    def methods(self) -> list[str]:
        """The training methods the sweep's trials can use."""
        p = self.space.get("method")
        return list(p.choices) if p is not None else [self.train.method]

    @property
    def adaptive(self) -> AdaptiveSizes | None:
        p = self.space.get("n_samples")
        return p if isinstance(p, AdaptiveSizes) else None

    def max_samples(self) -> int:
        p = self.space["n_samples"]
        return int(max(p.choices) if p.type == "categorical" else p.max if p.type == "adaptive" else p.high)

    def rungs(self) -> list[int]:
        """n_samples of each multi-fidelity rung: min_samples * eta**k below the top, then the top."""
        mf, top = self.multi_fidelity, self.max_samples()
        out, n = [], mf.min_samples
        while n < top:
            out.append(n)
            n *= mf.reduction_factor
        return [*out, top]


# ---------------------------------------------------------------- gate rules


class GateRule(Strict):
    """`metric` is SUITE.METRIC. Either an absolute `threshold` or a `max_regression` vs the baseline."""

    metric: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+\.[A-Za-z0-9_,-]+$")]  # lm-eval names a filtered metric "exact_match,strict-match"
    op: Literal[">=", "<="] = ">="
    threshold: float | None = None
    max_regression: Annotated[float, Field(ge=0)] | None = None
    mode: Literal["point", "confident"] = "point"
    min_items: Annotated[int, Field(ge=1)] = 10  # scored on the candidate, and shared with the baseline for a regression rule

    @model_validator(mode="after")
    def _one_kind(self):
        if (self.threshold is None) == (self.max_regression is None):
            raise ValueError("give exactly one of 'threshold' or 'max_regression'")
        return self


class GateConfig(Strict):
    rules: Annotated[list[GateRule], Field(min_length=1)]
    required_suites: list[str] = []


# ---------------------------------------------------------------- loading

KINDS: dict[str, type[Strict]] = {"suite": SuiteConfig, "sweep": SweepConfig, "gate": GateConfig}


def detect_kind(data: dict) -> str:
    if "rules" in data:
        return "gate"
    if "space" in data or "study" in data:
        return "sweep"
    return "suite"


def read_yaml(path: Path) -> Any:
    text = read_text(path, "YAML file")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}:{where} not valid YAML: {getattr(err, 'problem', err)}") from err


def load(path: Path, kind: str | None = None) -> Strict:
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    kind = kind or detect_kind(data)
    try:
        cfg = KINDS[kind].model_validate(data)
    except ValidationError as err:
        raise UserError(*format_errors(path, err)) from None
    return cfg.relative_to(Path(path).parent) if isinstance(cfg, SweepConfig) else cfg


def format_errors(path: Path, err: ValidationError) -> list[str]:
    lines = []
    for e in err.errors():
        field = ".".join(str(part) for part in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            msg = "unknown field (typo?)"
        else:
            msg = e["msg"].removeprefix("Value error, ")
            if "input" in e and e["type"] not in ("missing",) and not isinstance(e["input"], dict):
                msg += f" (got {masked_userinfo(repr(e['input']))})"
        lines.append(f"{path}: {field}: {msg} (reference: docs/suites.md)")
    return lines


def validate_args(model: type[Strict], values: dict) -> Strict:
    """Validate CLI arguments with the same model a YAML file uses; errors name the --flag."""
    try:
        return model.model_validate(values)
    except ValidationError as err:
        raise UserError(*(
            f"--{str(e['loc'][0]).replace('_', '-')}: {e['msg']}" + (f" (got {masked_userinfo(repr(e['input']))})" if "input" in e else "")
            for e in err.errors()
        )) from None
