"""Reading the user's JSONL files, and the nested training subsets that make n_samples comparable."""

from __future__ import annotations

import random
from pathlib import Path

from harness.errors import UserError
from harness.runtime.files import read_jsonl

# The permutation is fixed (not the trial seed), so 64 ⊂ 128 ⊂ 256 across every trial of a study.
PERMUTATION_SEED = 0
MAX_HELDOUT = 32  # rows; enough to see a loss move, cheap enough to run twice per trial


def to_conversation(row: dict, path: Path, lineno: int) -> dict:
    """Either shape of training row -> TRL's conversational prompt/completion pair.

    `{"messages": [..., {"role": "assistant", ...}]}` trains on the last assistant turn;
    `{"prompt": str, "completion": str}` becomes one user turn and one assistant turn, so the base
    model's chat template applies to both shapes alike.
    """
    if "messages" in row:
        messages = row["messages"]
        ok = isinstance(messages, list) and len(messages) >= 2 and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in messages
        )
        if not ok or messages[-1]["role"] != "assistant":
            raise UserError(f"{path}: line {lineno}: field 'messages' must be a list of {{role, content}} ending with an assistant turn")
        return {"prompt": messages[:-1], "completion": messages[-1:]}
    if isinstance(row.get("prompt"), str) and isinstance(row.get("completion"), str):
        return {
            "prompt": [{"role": "user", "content": row["prompt"]}],
            "completion": [{"role": "assistant", "content": row["completion"]}],
        }
    raise UserError(f"{path}: line {lineno}: expected field 'messages' or fields 'prompt' and 'completion'")


def _turns(value, role: str) -> list[dict] | None:
    """A string as one turn of `role`, or a list of {role, content} turns as given; None if neither."""
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    if isinstance(value, list) and value and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value):
        return value
    return None


def to_preference(row: dict, path: Path, lineno: int) -> dict:
    """A preference row -> TRL's conversational pair {prompt, chosen, rejected}.

    Each field is a string or a list of chat messages; a string prompt becomes one user turn and a
    string answer one assistant turn, so the chat template applies as it does for SFT."""
    pair = {"prompt": _turns(row.get("prompt"), "user"), "chosen": _turns(row.get("chosen"), "assistant"),
            "rejected": _turns(row.get("rejected"), "assistant")}
    if bad := [k for k, v in pair.items() if v is None]:
        raise UserError(f"{path}: line {lineno}: field {bad[0]!r} must be a string or a list of {{role, content}} messages "
                        "(preference rows: prompt, chosen, rejected)")
    if pair["chosen"] == pair["rejected"]:
        raise UserError(f"{path}: line {lineno}: 'chosen' and 'rejected' are the same answer")
    return pair


def training_split(path: Path, n_samples: int, preference: bool = False) -> tuple[list[dict], list[dict]]:
    """The first n_samples rows (preference pairs with `preference`) of the file's fixed permutation,
    and a held-out tail never trained on."""
    parse = to_preference if preference else to_conversation
    rows = [parse(row, path, i) for i, row in enumerate(read_jsonl(path), 1)]
    order = list(range(len(rows)))
    random.Random(PERMUTATION_SEED).shuffle(order)
    heldout_n = min(MAX_HELDOUT, len(rows) // 10)
    available = len(rows) - heldout_n
    if n_samples > available:
        raise UserError(
            f"{path}: n_samples={n_samples} but the file has {len(rows)} rows "
            f"({available} trainable after a held-out tail of {heldout_n})"
        )
    train = [rows[i] for i in order[:n_samples]]
    heldout = [rows[i] for i in order[len(rows) - heldout_n:]]
    return train, heldout
