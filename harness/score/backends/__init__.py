"""Backends and the one factory that picks them."""

from __future__ import annotations

from harness.errors import UserError
from harness.models import BaseModel
from harness.score.backends.base import (
    Backend,
    Candidate,
    GenerateRequest,
    LoglikelihoodRequest,
    make_candidate,
)

__all__ = ["Backend", "Candidate", "GenerateRequest", "LoglikelihoodRequest", "create", "make_candidate"]


def create(kind: str, base: BaseModel, candidates: list[Candidate], dtype: str = "float32", **options) -> Backend:
    options = {k: v for k, v in options.items() if v is not None}
    if kind == "hf":
        from harness.score.backends.hf import HFBackend

        return HFBackend(base, candidates, dtype=dtype, **options)
    if kind == "vllm" and options.get("server"):
        from harness.score.backends.vllm_server import VLLMServerBackend

        return VLLMServerBackend(base, candidates, dtype=dtype, **options)
    if kind == "vllm":
        from harness.score.backends.vllm import VLLMBackend

        return VLLMBackend(base, candidates, dtype=dtype, **options)
    raise UserError(f"--backend {kind}: expected 'hf' or 'vllm'" + (" (--server needs --backend vllm)" if options.get("server") else ""))
