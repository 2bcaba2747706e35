"""Backends and the one factory that picks them."""

from __future__ import annotations

from harness.backends.base import Backend, Candidate, GenerateRequest, LoglikelihoodRequest, make_candidate
from harness.errors import UserError
from harness.models import BaseModel

__all__ = ["Backend", "Candidate", "GenerateRequest", "LoglikelihoodRequest", "create", "make_candidate"]


def create(kind: str, base: BaseModel, candidates: list[Candidate], dtype: str = "float32", **options) -> Backend:
    if kind == "hf":
        from harness.backends.hf import HFBackend

        return HFBackend(base, candidates, dtype=dtype, **options)
    if kind == "vllm":
        from harness.backends.vllm import VLLMBackend

        return VLLMBackend(base, candidates, dtype=dtype, **options)
    raise UserError(f"--backend {kind}: expected 'hf' or 'vllm'")
