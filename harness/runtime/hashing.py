"""Content hashes: candidates, suites and caches are keyed by what things *are*, not by their names."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from harness.runtime.files import write_json
from harness.store import paths

CHUNK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_json(obj) -> str:
    return sha256_bytes(json.dumps(obj, sort_keys=True, default=str).encode())


def sha256_file(path: Path) -> str:
    """Full-content hash, memoised on (path, size, mtime) so multi-GB weights are read once."""
    path = Path(path).resolve()
    st = path.stat()
    memo = paths.hash_memo()
    key = f"{path}|{st.st_size}|{st.st_mtime_ns}"
    try:
        table = json.loads(memo.read_text())
    except (OSError, ValueError):
        table = {}
    if key in table:
        return table[key]
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    table[key] = digest.hexdigest()
    write_json(memo, table, indent=None)  # concurrent writers may drop each other's entries, never corrupt the file
    return table[key]


def sha256_tree(root: Path, patterns: tuple[str, ...] = ("*",)) -> str:
    """Hash of the relative names and contents of the files under root matching patterns."""
    root = Path(root)
    files = sorted({p for pat in patterns for p in root.rglob(pat) if p.is_file()})
    digest = hashlib.sha256()
    for file in files:
        digest.update(str(file.relative_to(root)).encode() + b"\0")
        digest.update(sha256_file(file).encode())
    return digest.hexdigest()
