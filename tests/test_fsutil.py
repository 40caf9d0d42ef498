import os

import pytest

from wizard import fsutil


def test_atomic_write_replaces_and_keeps_mode(tmp_path):
    target = tmp_path / "f.txt"
    fsutil.atomic_write_text(target, "one")
    assert target.read_text() == "one"
    assert target.stat().st_mode & 0o777 == 0o644
    os.chmod(target, 0o600)
    fsutil.atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert target.stat().st_mode & 0o777 == 0o600
    assert os.listdir(tmp_path) == ["f.txt"]


def test_failed_rename_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "f.txt"
    target.write_text("old")

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fsutil.os, "replace", boom)
    with pytest.raises(OSError):
        fsutil.atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["f.txt"]


def test_hashes_agree(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"abc" * 1_000_000)
    assert fsutil.sha256_file(path) == fsutil.sha256_bytes(b"abc" * 1_000_000)
    assert fsutil.sha256_text("é") == fsutil.sha256_bytes("é".encode())
    assert fsutil.file_sha256_or_none(tmp_path / "missing") is None


def test_temp_names_are_recognised(tmp_path, monkeypatch):
    seen = []
    real = fsutil.os.replace
    monkeypatch.setattr(fsutil.os, "replace", lambda s, d: (seen.append(os.path.basename(s)), real(s, d)))
    fsutil.atomic_write_text(tmp_path / "config.pbtxt", "x")
    assert fsutil.is_temp_file(seen[0])
    assert not fsutil.is_temp_file("config.pbtxt")
