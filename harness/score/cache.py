"""Response cache keyed by content: candidate hash, backend, dtype and the request itself.

lm-eval's own cache keys on the request alone (an adapter silently got the base model's answers),
so we never use it. Changing the suite data or the prompt changes the request, hence the key.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from harness.runtime.hashing import sha256_json
from harness.store import paths

# Part of every key: bumped whenever a backend's answers change meaning, so none from before is reused.
# 2: hf generation stops at a stop string in the generated text only (not one spanning the prompt's end).
ANSWERS_VERSION = 2


class ResponseCache:
    def __init__(self, path: Path | None = None, enabled: bool = True):
        self.enabled = enabled
        self.asked = self.hits = 0  # answers looked up, and found (the run's log says how many were reused)
        self.path = path or paths.response_cache()
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=60)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    @staticmethod
    def key(backend: str, dtype: str, request) -> str:
        fields = {k: getattr(request, k) for k in request.__dataclass_fields__ if k != "candidate"}
        return sha256_json([request.candidate.hash, backend, dtype, type(request).__name__, fields, ANSWERS_VERSION])

    def get_many(self, keys: list[str]) -> dict[str, object]:
        self.asked += len(keys)
        if not self.enabled or not keys:
            return {}
        found = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            rows = self._db.execute(f"SELECT key, value FROM responses WHERE key IN ({','.join('?' * len(chunk))})", chunk)
            found.update((k, json.loads(v)) for k, v in rows)
        self.hits += len(found)
        return found

    def put_many(self, items: dict[str, object]) -> None:
        if self.enabled and items:
            with self._db:
                self._db.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?)", [(k, json.dumps(v)) for k, v in items.items()])
