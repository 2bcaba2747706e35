"""Files on disk: concurrent writers of one cache entry leave one whole file; directories appear whole;
JSON is strict."""

import json
import math
import multiprocessing as mp

import pytest

from harness.errors import UserError
from harness.runtime.files import (
    atomic_write,
    dumps,
    publish_dir,
    read_jsonl,
    write_json,
)


def _hammer(path: str, writer: int, rounds: int, start) -> None:
    start.wait()
    for i in range(rounds):
        write_json(path, {"writer": writer, "round": i, "payload": [writer] * 50_000})


def test_two_processes_writing_the_same_cache_entry_leave_one_whole_file(tmp_path):
    path = tmp_path / "cache" / "entry.json"
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=_hammer, args=(str(path), w, 60, start)) for w in (1, 2)]
    for p in procs:
        p.start()
    start.set()
    reads = 0
    while any(p.is_alive() for p in procs):  # a reader never sees half a file
        if path.exists():
            doc = json.loads(path.read_text())
            assert doc["payload"] == [doc["writer"]] * 50_000
            reads += 1
    for p in procs:
        p.join()
        assert p.exitcode == 0, "a writer crashed (a shared temp name would make os.replace fail)"
    final = json.loads(path.read_text())
    assert final["writer"] in (1, 2) and final["round"] == 59
    assert reads > 0
    assert [p.name for p in path.parent.iterdir()] == ["entry.json"], "temp files were left behind"


def test_a_directory_is_published_whole_or_not_at_all(tmp_path):
    final = tmp_path / "adapter"
    with pytest.raises(RuntimeError):
        with publish_dir(final) as tmp:
            (tmp / "weights").write_text("half")
            raise RuntimeError("killed mid-write")
    assert not final.exists() and list(tmp_path.iterdir()) == []
    with publish_dir(final) as tmp:
        (tmp / "weights").write_text("whole")
    assert (final / "weights").read_text() == "whole"
    with pytest.raises(FileExistsError):
        with publish_dir(final) as tmp:
            pass
    with publish_dir(final, replace=True) as tmp:
        (tmp / "weights").write_text("new")
    assert (final / "weights").read_text() == "new" and len(list(tmp_path.iterdir())) == 1


def test_json_is_strict_nan_and_infinity_become_null(tmp_path):
    import numpy as np

    doc = {"nan": math.nan, "inf": [math.inf, -math.inf], "np": np.float64("nan"), "ok": np.float32(0.5), "n": np.int64(3)}
    text = dumps(doc)
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}")) == {
        "nan": None, "inf": [None, None], "np": None, "ok": 0.5, "n": 3}
    write_json(tmp_path / "x.json", doc)
    assert "NaN" not in (tmp_path / "x.json").read_text()


@pytest.mark.parametrize(("content", "message"), [
    (b"", "no rows"),
    (b'{"a": 1}\n{"a": \n', "line 2: malformed JSON"),
    (b"[1, 2]\n", "line 1: expected a JSON object"),
    (b'{"a": "\xff\xfe"}\n', "not UTF-8"),
])
def test_bad_jsonl_is_one_line_naming_the_file(tmp_path, content, message):
    path = tmp_path / "data.jsonl"
    atomic_write(path, content)
    with pytest.raises(UserError) as err:
        read_jsonl(path)
    assert len(err.value.lines) == 1 and str(path) in err.value.lines[0] and message in err.value.lines[0]
