"""Writing files so that a reader never sees half of one, and reading the user's JSONL.

Every file the harness writes goes through `atomic_write` (or `atomic_path` for writers that want a
path, such as `DataFrame.to_parquet`), and every directory it creates whole goes through
`publish_dir`. The temporary name is unique (mkstemp/mkdtemp in the target's own directory), so two
processes writing the same cache entry at once each write their own temp file and one whole result
wins: there is no shared `.tmp` name for them to collide on. Data is fsynced before `os.replace`,
so a crash leaves the old file or the new one, never a truncated one.

JSON is always strict (RFC 8259): NaN and infinities are written as `null`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from harness.errors import UserError


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a unique temp path beside `path`; on success it replaces `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:  # the writer may have replaced the file: sync what is there now
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; results are meant to be read by others
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: Path, data: str | bytes) -> Path:
    """Write `data` to `path` atomically (see the module docstring); returns `path`."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    return Path(path)


def strict(obj):
    """`obj` with every non-finite float replaced by None, so json.dumps(allow_nan=False) accepts it."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return strict(obj.item())
    return obj


def dumps(obj, indent: int | None = 2) -> str:
    """Strict JSON text: NaN/inf become null; anything else json cannot encode is written as str."""
    return json.dumps(strict(obj), indent=indent, default=lambda v: strict(v.item()) if hasattr(v, "item") else str(v),
                      allow_nan=False)


def write_json(path: Path, obj, indent: int | None = 2) -> Path:
    return atomic_write(path, dumps(obj, indent) + "\n")


@contextlib.contextmanager
def publish_dir(final: Path, replace: bool = False) -> Iterator[Path]:
    """Yield a fresh temp directory beside `final`; on success it is renamed to `final`.

    `final` therefore exists complete or not at all. With `replace`, an existing `final` is removed
    first (the one moment a reader can find it missing); without, an existing `final` is an error.
    On failure the temp directory is removed and `final` is left as it was.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            if not replace:
                raise FileExistsError(f"{final} appeared while it was being written")
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def exclusive(lock: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on the file `lock` (created if absent) for the block: one process
    at a time does the work, the others wait and then find it done. Released when the holder exits,
    however it exits (the kernel drops a dead process's flock)."""
    lock = Path(lock)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def read_text(path: Path, what: str = "file") -> str:
    """A text file the harness reads; missing, unreadable or not UTF-8 is a one-line UserError."""
    path = Path(path)
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, expected a {what}") from None
    except OSError as err:
        raise UserError(f"{path}: cannot read: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text (byte {err.start}); expected a {what}") from None


def read_json(path: Path, what: str = "JSON file") -> dict:
    """A JSON object from a file; anything else (empty, truncated, binary, a list) is a one-line UserError."""
    text = read_text(path, what)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: not valid JSON (line {err.lineno}: {err.msg}); expected a {what}") from None
    if not isinstance(doc, dict):
        raise UserError(f"{path}: expected a JSON object, got {type(doc).__name__}")
    return doc


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSONL file; every problem is a UserError naming the file and line."""
    path = Path(path)
    rows = []
    if path.suffix == ".gz":  # a compressed data file (HumanEval ships one)
        import gzip

        if not path.is_file():
            raise UserError(f"{path}: no such data file")
        try:
            text = gzip.decompress(path.read_bytes()).decode("utf-8")
        except (OSError, EOFError, UnicodeDecodeError) as err:
            raise UserError(f"{path}: not a readable gzip of UTF-8 text ({err})") from None
    else:
        text = read_text(path, "data file")
    for lineno, line in enumerate(text.split("\n"), 1):  # not splitlines: JSON strings may hold U+2028
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"{path}: line {lineno}: malformed JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise UserError(f"{path}: line {lineno}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
    if not rows:
        raise UserError(f"{path}: no rows")
    return rows
