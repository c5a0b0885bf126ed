"""Atomic landing: a file appears under raw/ whole or not at all, and no temporary file is left."""

from __future__ import annotations

import errno
import os
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from spymaster_assets.download import landing
from spymaster_assets.download.landing import land_file, landing_path, verify_dbn
from spymaster_assets.download.requests import DownloadRequest
from spymaster_core.errors import RawDataError

from .fake_databento import write_header_only_dbn

START = datetime(2024, 1, 9, 23, tzinfo=timezone.utc)
END = datetime(2024, 1, 10, 22, tzinfo=timezone.utc)
OHLCV = DownloadRequest("GLBX.MDP3", "ohlcv-1m", ("ES.FUT",), "parent", START, END, "es-fut")


def all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_landing_path_layout(tmp_path):
    path = landing_path(tmp_path / "raw", OHLCV, date(2024, 1, 10))
    assert path == tmp_path / "raw" / "GLBX.MDP3" / "ohlcv-1m" / "glbx-mdp3-20240110-es-fut.ohlcv-1m.dbn.zst"


def test_land_file_success(tmp_path):
    final = landing_path(tmp_path / "raw", OHLCV, date(2024, 1, 10))
    staging = tmp_path / "staging"
    land_file(final, lambda tmp: write_header_only_dbn(tmp, "ohlcv-1m", ["ES.FUT"], START, END), staging, lambda tmp: verify_dbn(tmp, OHLCV))
    assert all_files(tmp_path / "raw") == [final]
    assert all_files(staging) == []


def test_failing_download_leaves_nothing(tmp_path):
    final = landing_path(tmp_path / "raw", OHLCV, date(2024, 1, 10))
    staging = tmp_path / "staging"

    def half_then_fail(tmp: Path) -> None:
        tmp.write_bytes(b"half a file")
        raise ConnectionError("reset")

    with pytest.raises(ConnectionError):
        land_file(final, half_then_fail, staging)
    assert all_files(tmp_path / "raw") == []
    assert all_files(staging) == []


def test_failing_verification_keeps_the_old_file(tmp_path):
    final = landing_path(tmp_path / "raw", OHLCV, date(2024, 1, 10))
    write_header_only_dbn(final, "ohlcv-1m", ["ES.FUT"], START, END)
    before = final.read_bytes()
    staging = tmp_path / "staging"
    # The server sent another schema than asked: rejected, the old file stays as it was.
    with pytest.raises(RawDataError, match="holds GLBX.MDP3 trades, expected GLBX.MDP3 ohlcv-1m"):
        land_file(final, lambda tmp: write_header_only_dbn(tmp, "trades", ["ES.FUT"], START, END), staging, lambda tmp: verify_dbn(tmp, OHLCV))
    assert final.read_bytes() == before
    assert all_files(tmp_path / "raw") == [final]
    assert all_files(staging) == []


def test_truncated_download_is_rejected(tmp_path):
    final = landing_path(tmp_path / "raw", OHLCV, date(2024, 1, 10))
    staging = tmp_path / "staging"

    def truncated(tmp: Path) -> None:
        good = write_header_only_dbn(tmp_path / "whole.dbn.zst", "ohlcv-1m", ["ES.FUT"], START, END).read_bytes()
        tmp.write_bytes(good[: len(good) // 2])

    with pytest.raises(RawDataError):
        land_file(final, truncated, staging, lambda tmp: verify_dbn(tmp, OHLCV))
    assert all_files(tmp_path / "raw") == []
    assert all_files(staging) == []


def test_write_that_produces_no_file(tmp_path):
    final = landing_path(tmp_path / "raw", OHLCV, date(2024, 1, 10))
    with pytest.raises(RawDataError, match="wrote no file"):
        land_file(final, lambda tmp: None, tmp_path / "staging")
    assert all_files(tmp_path / "raw") == []


def test_cross_device_rename_goes_through_a_hidden_file_beside_the_target(tmp_path, monkeypatch):
    final = landing_path(tmp_path / "raw", OHLCV, date(2024, 1, 10))
    staging = tmp_path / "staging"
    real_replace = os.replace
    renames: list[tuple[Path, Path]] = []

    def replace(src, dst):
        renames.append((Path(src), Path(dst)))
        if Path(src).parent == staging:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_replace(src, dst)

    monkeypatch.setattr(landing.os, "replace", replace)
    land_file(final, lambda tmp: write_header_only_dbn(tmp, "ohlcv-1m", ["ES.FUT"], START, END), staging, lambda tmp: verify_dbn(tmp, OHLCV))
    assert all_files(tmp_path / "raw") == [final]
    assert all_files(staging) == []
    # The second rename came from a dot-file in the target directory that no DBN reader matches.
    src, dst = renames[-1]
    assert dst == final and src.parent == final.parent and src.name.startswith(".") and src.name.endswith(".part")
