"""Scoring: every candidate on every suite over one loaded base model, results per item.

evaluate.py drives it; suites/ says what is scored (a registered kind per kind of suite); lmeval.py
compiles a suite into an lm-eval task; backends/ answer the requests (hf, vllm, a vLLM server) with
the vLLM CPU plugin, the parity check and `harness serve`; cache.py keeps answers by content;
metrics.py, humaneval.py and sandbox.py grade.
"""
