"""The one Backend interface: answer loglikelihood and generation requests for many candidates
over one loaded base model. Callers never ask which backend they hold."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from harness.models import BaseModel, check_adapter
from harness.runtime.hashing import sha256_json, sha256_tree


@dataclass(frozen=True)
class Candidate:
    """A base model plus an optional adapter; `hash` keys every cache and result row."""

    name: str
    adapter: Path | None
    hash: str

    @property
    def is_base(self) -> bool:
        return self.adapter is None


def make_candidate(name: str, base: BaseModel, adapter: Path | None = None) -> Candidate:
    if adapter is None:
        return Candidate(name, None, sha256_json({"base": base.identity})[:16])
    adapter = Path(adapter)
    check_adapter(adapter, base, f"--adapter {name}={adapter}")
    content = sha256_tree(adapter, ("adapter_config.json", "*.safetensors", "*.bin"))
    return Candidate(name, adapter.resolve(), sha256_json({"base": base.identity, "adapter": content})[:16])


@dataclass(frozen=True)
class LoglikelihoodRequest:
    candidate: Candidate
    context: str
    continuation: str


@dataclass(frozen=True)
class GenerateRequest:
    candidate: Candidate
    context: str
    until: tuple[str, ...]
    max_tokens: int
    temperature: float = 0.0
    seed: int = 0  # sample index: n samples of one prompt differ by seed


class Backend(ABC):
    """One loaded base model answering requests for every candidate."""

    name: str = "?"
    base: BaseModel  # the one loaded base model every candidate shares
    candidates: list[Candidate]
    dtype: str = "float32"

    @abstractmethod
    def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[tuple[float, bool, int]]:
        """(sum of continuation logprobs, continuation is the greedy decode, tokens processed) per request."""

    @abstractmethod
    def generate(self, requests: list[GenerateRequest]) -> list[tuple[str, int]]:
        """(generated text cut at the first stop string, tokens processed) per request."""

    def add_candidates(self, candidates: list[Candidate]) -> None:
        """Make more candidates servable without restarting the engine (a sweep adds one per trial)."""
        self.candidates = [*self.candidates, *(c for c in candidates if c not in self.candidates)]

    def name_for(self, candidate: Candidate) -> str:
        """The backend that answers this candidate (its cache key and its item rows' `backend`)."""
        return self.name

    def reroute(self, candidate: Candidate, reason: str) -> bool:
        """Give a candidate this backend failed on to another one; False: there is no other."""
        return False

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the engine."""
