"""`harness sweep`'s command-line options: overrides of the sweep file, one typed object that every
worker of one sweep shares (an extra local worker gets the same options on its command line)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.config import SweepConfig


@dataclass(frozen=True)
class SweepOptions:
    n_trials: int | None = None
    timeout: float | None = None
    study: str | None = None
    storage: str | None = None
    backend: str | None = None
    trackers: tuple[str, ...] = ()
    artifacts: str | None = None

    def apply(self, cfg: SweepConfig) -> SweepConfig:
        """The sweep file's config with these options in place of its own values: what a worker runs."""
        given = {"study": self.study, "storage": self.storage, "backend": self.backend, "artifacts": self.artifacts,
                 "trackers": list(self.trackers) or None}
        budget = {"n_trials": self.n_trials, "timeout_s": self.timeout}
        update = {k: v for k, v in given.items() if v is not None}
        if any(v is not None for v in budget.values()):
            update["budget"] = cfg.budget.model_copy(update={k: v for k, v in budget.items() if v is not None})
        return cfg.model_copy(update=update)

    def argv(self, file: Path) -> list[str]:
        """The `harness sweep` command line that runs one more worker of the same sweep."""
        args = ["sweep", str(file)]
        for flag, value in (("--n-trials", self.n_trials), ("--timeout", self.timeout), ("--study", self.study),
                            ("--storage", self.storage), ("--backend", self.backend), ("--artifacts", self.artifacts)):
            if value is not None:
                args += [flag, str(value)]
        for name in self.trackers:
            args += ["--tracker", name]
        return args
