"""FileMemo: a value is computed once per identity of its files, again when a file is rewritten, and only the entries still used are kept."""

from __future__ import annotations

import os

import pytest

from spymaster_resources.file_memo import FileMemo


def test_a_value_is_computed_once_until_its_file_is_rewritten(tmp_path):
    path = tmp_path / "part.parquet"
    path.write_text("v1")
    memo: FileMemo[str] = FileMemo()
    calls = []

    def read() -> str:
        calls.append(1)
        return path.read_text()

    assert memo.get([path], read) == "v1" and memo.get([path], read) == "v1" and len(calls) == 1
    staged = tmp_path / "staged"
    staged.write_text("v2 longer")
    os.replace(staged, path)  # as the lake writes: a new file renamed over the old one
    assert memo.get([path], read) == "v2 longer" and len(calls) == 2
    assert memo.get([path], read, tag="other") == "v2 longer" and len(calls) == 3  # the tag is part of the key
    with pytest.raises(FileNotFoundError):
        memo.get([tmp_path / "absent"], read)


def test_retain_used_keeps_the_entries_asked_for_since_the_last_call(tmp_path):
    paths = [tmp_path / f"{i}" for i in range(3)]
    for p in paths:
        p.write_text(p.name)
    memo: FileMemo[str] = FileMemo()
    for p in paths:
        memo.get([p], p.read_text)
    memo.retain_used()
    assert len(memo) == 3
    memo.get([paths[2]], paths[2].read_text)
    memo.retain_used()
    assert len(memo) == 1


def test_max_entries_lets_the_oldest_entry_go(tmp_path):
    paths = [tmp_path / f"{i}" for i in range(3)]
    for p in paths:
        p.write_text(p.name)
    memo: FileMemo[str] = FileMemo(max_entries=2)
    calls = []

    def reader(p):
        return lambda: calls.append(p.name) or p.read_text()

    for p in paths:
        memo.get([p], reader(p))
    assert len(memo) == 2
    memo.get([paths[2]], reader(paths[2]))  # still held
    memo.get([paths[0]], reader(paths[0]))  # the oldest went: read again
    assert calls == ["0", "1", "2", "0"]
