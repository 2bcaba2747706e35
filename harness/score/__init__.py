"""Scoring: every candidate on every suite over one loaded base model, results per item.

evaluate.py scores and returns a run (it writes nothing); eval_command.py is `harness eval` (one
engine, the run recorded once through the store); suites/ says what is scored and how it is graded
(a registered kind per kind of suite: compiled into an lm-eval task, or one of lm-eval's own);
backends/ answer the requests (hf, vllm, a vLLM server) with the vLLM CPU plugin, the parity check
and `harness serve`; cache.py keeps answers by content; metrics.py, humaneval_grading.py and
sandbox.py grade.
"""
