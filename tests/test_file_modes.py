"""Files written through cosim's atomic writers honour the process umask (not mkstemp's 0600)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from cosim.batch.results import atomic_write, atomic_write_json
from cosim.fileio import current_umask, write_frame_atomic, write_json_atomic, write_text_atomic


@pytest.fixture(params=[0o022, 0o027, 0o002])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_current_umask_reads_without_changing_it(umask: int) -> None:
    assert current_umask() == umask
    assert current_umask() == umask


def test_fileio_writers_honour_the_umask(tmp_path: Path, umask: int) -> None:
    expected = 0o666 & ~umask
    written = [
        write_text_atomic(tmp_path / "a.txt", "x"),
        write_json_atomic(tmp_path / "b.json", {"a": 1}),
        write_frame_atomic(tmp_path / "c.csv", pd.DataFrame({"a": [1]})),
        write_frame_atomic(tmp_path / "d.parquet", pd.DataFrame({"a": [1]})),
    ]
    for path in written:
        assert _mode(path) == expected, (path, oct(_mode(path)))


def test_batch_writers_honour_the_umask(tmp_path: Path, umask: int) -> None:
    expected = 0o666 & ~umask
    atomic_write(tmp_path / "x.bin", lambda tmp: tmp.write_bytes(b"1"))
    atomic_write_json(tmp_path / "m.json", {"a": 1})
    assert _mode(tmp_path / "x.bin") == expected
    assert _mode(tmp_path / "m.json") == expected


def test_overwriting_a_file_does_not_keep_a_stricter_old_mode(tmp_path: Path, umask: int) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    target.chmod(0o600)
    write_text_atomic(target, "new")
    assert target.read_text() == "new"
    assert _mode(target) == 0o666 & ~umask
