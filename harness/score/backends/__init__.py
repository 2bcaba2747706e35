"""Backends, and the registry that picks one by name (`--backend`)."""

from __future__ import annotations

from harness.models import BaseModel
from harness.runtime.registry import Registry
from harness.score.backends.base import (
    Backend,
    Candidate,
    GenerateRequest,
    LoglikelihoodRequest,
    make_candidate,
)

__all__ = ["BACKENDS", "Backend", "Candidate", "GenerateRequest", "LoglikelihoodRequest", "create", "make_candidate"]

# Imported on first use: each module loads torch or vLLM. "vllm" with a `server` URL is the client of
# a running server (harness serve, vLLM's own), without one an in-process engine.
BACKENDS: Registry[type[Backend]] = Registry("--backend")
BACKENDS.add("hf", "harness.score.backends.hf:HFBackend")
BACKENDS.add("vllm", "harness.score.backends.vllm:VLLMBackend")
BACKENDS.add("vllm-server", "harness.score.backends.vllm_server:VLLMServerBackend")
BACKENDS.add("auto", "harness.score.backends.routed:RoutedBackend")  # vllm where it can, hf for the rest


def create(kind: str, base: BaseModel, candidates: list[Candidate], dtype: str = "float32", **options) -> Backend:
    options = {k: v for k, v in options.items() if v is not None}
    name = "vllm-server" if kind == "vllm" and options.get("server") else kind
    return BACKENDS.get(name)(base, candidates, dtype=dtype, **options)
