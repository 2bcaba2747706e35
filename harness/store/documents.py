"""The JSON documents the harness writes for people and pipelines, as typed, versioned models.

    scores.json     what one scores directory holds: candidates, suites, means with CIs, failures
    best.json       a report's pick, its comparison with the base, the forecast
    card.json       a report in one line, as reports/index.html lists it
    forecast        `harness forecast --json`: the learning curve's forecast, or why there is none
    champion.json   the candidate promoted by `harness gate --promote`
    gate verdict    `harness gate --json`: pass or fail, rule by rule

Every document carries `schema_version`. A reader validates what it reads: a document written
before versioning (no `schema_version`) has version 1's fields and is read as version 1; one from a
newer harness is refused with a message saying so; anything else malformed is a UserError naming
the file and field. The JSON Schemas in docs/schemas/ are generated from these models
(`python -m harness.store.documents docs/schemas`) and a test keeps them in step.

Floats are `float | None`: a NaN is written as null (strict JSON).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.errors import UserError
from harness.runtime.files import dumps, read_json, write_json

Number = float | None


class Document(BaseModel):
    """A versioned JSON document; subclasses name their file kind and current version."""

    model_config = ConfigDict(extra="forbid")
    VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "document"
    schema_version: int = Field(1, description="the layout of this document; readers refuse newer ones")

    @classmethod
    def upgrade(cls, data: dict, version: int) -> dict:
        """An older version's fields as this version's (the default: the same)."""
        return data


class Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- scores.json


class ScoredCandidate(Part):
    name: str
    hash: str
    adapter: str | None = None
    backend: str | None = None  # what scored its items: hf | vllm (under --backend auto, per candidate)


class ScoredSuite(Part):
    name: str
    version: str
    n_items: int
    headline: str | None = None


class ScoreRow(Part):
    candidate: str
    suite: str
    metric: str
    value: Number
    stderr: Number
    ci_low: Number
    ci_high: Number
    n: int


class SuiteFailureRecord(Part):
    suite: str
    reason: str
    candidates: list[str] = []


class ScoresDoc(Document):
    WHAT: ClassVar[str] = "scores file (the output of harness eval)"
    VERSION: ClassVar[int] = 2  # 2: each candidate names the backend that scored it
    schema_version: int = 2
    backend: str | None = None
    dtype: str | None = None
    seconds: dict[str, float] = Field({}, description="scoring wall time per suite, all candidates together")
    candidates: list[ScoredCandidate] = []
    suites: list[ScoredSuite] = []
    scores: list[ScoreRow] = []
    failures: list[SuiteFailureRecord] = []

    def adapters(self) -> dict[str, str | None]:
        return {c.name: c.adapter for c in self.candidates}


# ---------------------------------------------------------------- best.json


class MeanCI(Part):
    value: Number
    stderr: Number
    ci_low: Number
    ci_high: Number
    n: int


class AdapterRef(Part):
    artifact: str | None = Field(description="the adapter's id in the study's artifact store")
    store: str | None = Field(description="the artifact store's URL")


class VersusBase(Part):
    diff: Number
    ci: list[Number]
    p_value: Number
    p_holm: Number
    better: bool


class RunnerUp(Part):
    candidate: str
    objective: Number


class Confirmed(Part):
    on: str = Field(description="'confirmation items' (held out from the pick) or 'all items' (too few to split)")
    n_items: int
    selection_objective: Number = Field(description="the pick's objective on the items it was chosen on")
    ci: list[Number] = Field(description="95% interval of `objective`")


# ---------------------------------------------------------------- the learning-curve forecast


class CurvePoint(Part):
    n: int
    mean: float
    ci: list[float] = Field(description="95%: which items were drawn and the run-to-run noise")
    n_items: int
    runs: int = Field(description="training runs at this size, averaged")


class Forecast95(Part):
    """A forecast quantity: null estimate and ci with a reason where it cannot be told."""

    n: int | None = Field(None, description="the training size (rows of `at`)")
    estimate: Number
    ci: list[Number] | None = Field(description="95%; [lower, 1] and one_sided where the upper end reaches a perfect score")
    one_sided: bool = False
    reason: str | None = None
    why: str | None = Field(None, description="why only a lower bound is given")


class SamplesNeeded(Part):
    estimate: Number
    ci: list[Number] | None = Field(description="95%; an upper end of null is unbounded")


class ForecastTarget(Part):
    value: float
    n: SamplesNeeded
    p_reachable: Number = Field(description="share of the plausible curves that reach the target at all")
    reason: str | None = None


class RunNoise(Part):
    run_sd: float = Field(description="sd of one training run's mean about the curve")
    source: Literal["replicates", "lack of fit", "unmeasured"]


class Suggestion(Part):
    n: int
    why: str


class ForecastDoc(Document):
    WHAT: ClassVar[str] = "learning-curve forecast (harness forecast --json)"
    metric: str
    model: str = Field(description="the family with the most weight, or none")
    weights: dict[str, float] = Field(description="each curve family's weight, by how well it predicted the largest size out of sample")
    noise: RunNoise
    points: list[CurvePoint]
    plateau: Forecast95
    at: list[Forecast95] = Field(description="a next training run's score at each size asked for")
    target: ForecastTarget | None = None
    abstained: str | None = Field(None, description="why there is no forecast (every estimate is then null)")
    suggest: Suggestion | None = Field(None, description="the training size that would help most")
    warnings: list[str] = []
    points_from: str | None = Field(None, description="how the points were chosen (a study: the configuration per size)")
    sentence: str | None = None


class BestDoc(Document):
    WHAT: ClassVar[str] = "report pick (best.json, from harness report)"
    VERSION: ClassVar[int] = 3
    schema_version: int = 3
    study: str
    candidate: str
    adapter: AdapterRef | None = None
    params: dict[str, Any] = {}
    objective: Number = Field(description="the pick's utility, measured as `confirmed.on` says")
    confirmed: Confirmed | None = None
    scores: dict[str, MeanCI] = Field({}, description="the pick's suites, measured on the same items as `objective`")
    rule: str
    utility: str = Field("", description="what the pick compares: the study's objective, or a multi-objective study's first")
    margin: Number = Field(None, description="delta: how much worse than the best a cheaper pick may be")
    shown_within_margin: bool | None = Field(None, description="false: no candidate could be shown within the margin of the "
                                                               "others, and the pick is the rule's fallback")
    near_best: list[str] = Field([], description="candidates shown within the margin of every other (Holm-corrected)")
    beats_base: bool | None = Field(description="is the picked candidate shown better than the base on the objective")
    vs_base: VersusBase | None = Field(description="the picked candidate against the base")
    others_beating_base: list[str] = Field([], description="other candidates shown better than the base")
    pareto_front: list[str] | None = Field(None, description="a multi-objective study's non-dominated candidates")
    seeds: int = Field(1, description="training runs of the pick's configuration (replicates), averaged in its scores")
    seed_sd: Number = Field(None, description="spread (sd) of the pick's objective across those runs")
    runner_up: RunnerUp | None = None
    forecast: ForecastDoc | None = Field(None, description="the learning-curve forecast, with its sentence")

    @classmethod
    def upgrade(cls, data: dict, version: int) -> dict:
        # Version 1 listed the candidates "not significantly worse" than the top; that rule is gone.
        # Before version 3 the forecast was one power law's, untyped: re-run the report for today's.
        gone = {"tied_with_top"} if version < 2 else set()
        return {k: (None if k == "forecast" and version < 3 else v) for k, v in data.items() if k not in gone}


# ---------------------------------------------------------------- card.json


class ReportCard(Document):
    """One report in a line: what `reports/index.html` lists for each study (written by `harness report`)."""

    WHAT: ClassVar[str] = "report card (card.json, from harness report)"
    study: str
    source: Literal["sweep", "items"] = Field(description="a sweep's study, or per-item scores made elsewhere (--items)")
    where: str | None = Field(None, description="the study's storage (password masked) or the items' path")
    base: str | None = Field(None, description="the base model as the sweep file named it (null: not recorded)")
    suites: list[str]
    candidates: int = Field(description="candidates on the leaderboard, the base included")
    pick: str
    objective: Number = None
    verdict: str = Field(description="the pick against the base model, in the report's words")
    beats_base: bool | None = None
    forecast: str | None = Field(None, description="the learning-curve sentence (a forecast or why there is none)")
    last_trial: str | None = Field(None, description="when the study's last candidate completed (ISO 8601)")
    reported: str = Field(description="when this report was written (ISO 8601)")


# ---------------------------------------------------------------- champion.json


class MlflowRecord(Part):
    tracking_uri_kind: str
    model: str
    version: int
    alias: str


class ChampionDoc(Document):
    WHAT: ClassVar[str] = "champion record"
    name: str
    candidate: str
    adapter: str | None = None
    results: str = Field(description="the champion's own copy of its items (a scores directory)")
    scores: dict[str, float] = {}
    mlflow: MlflowRecord
    promoted_at: str
    previous: ChampionDoc | None = Field(None, description="the champion before this one (one level of history)")


# ---------------------------------------------------------------- the gate's verdict


class RuleVerdict(Part):
    rule: str
    passed: bool
    value: Number
    ci_low: Number
    ci_high: Number
    threshold: Number
    detail: str


class GateVerdictDoc(Document):
    WHAT: ClassVar[str] = "gate verdict"
    candidate: str
    baseline: str | None = None
    passed: bool
    rules: list[RuleVerdict]


ALL: dict[str, type[Document]] = {"scores": ScoresDoc, "best": BestDoc, "forecast": ForecastDoc, "champion": ChampionDoc,
                                  "gate-verdict": GateVerdictDoc, "card": ReportCard}
D = TypeVar("D", bound=Document)


# ---------------------------------------------------------------- reading and writing


def read(path: Path, model: type[D]) -> D:
    """The document at `path`, validated; a UserError naming the file and field otherwise."""
    data = read_json(path, model.WHAT)
    version = data.get("schema_version", 1)  # documents before versioning had version 1's fields
    if isinstance(version, int) and version > model.VERSION:
        raise UserError(f"{path}: {model.WHAT} of schema_version {version}, written by a newer harness "
                        f"(this one reads up to {model.VERSION}); upgrade harness to read it")
    try:
        return model.model_validate({**model.upgrade(data, version), "schema_version": version})
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(document)"
        raise UserError(f"{path}: {where}: {first['msg']} (not a valid {model.WHAT})") from None


def write(path: Path, doc: Document) -> None:
    """Atomically, as strict JSON (NaN as null)."""
    write_json(path, doc.model_dump(mode="json"))


def schemas() -> dict[str, dict]:
    """file name -> JSON Schema of each document (what docs/schemas/ holds)."""
    return {f"{name}.schema.json": {"$schema": "https://json-schema.org/draft/2020-12/schema",
                                    **model.model_json_schema(mode="serialization")}
            for name, model in ALL.items()}


def write_schemas(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in schemas().items():
        (folder / name).write_text(dumps(schema) + "\n")
        written.append(folder / name)
    return written


if __name__ == "__main__":  # python -m harness.store.documents docs/schemas
    for path in write_schemas(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/schemas")):
        print(path)
