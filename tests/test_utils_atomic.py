"""Atomic writes and output locks: a failed or concurrent write never corrupts an output."""

from __future__ import annotations

import os
import stat

import pytest

from reid_stra.errors import ReidError
from reid_stra.utils.atomic import atomic_open, atomic_write_text, exclusive_lock


def test_failed_write_keeps_the_old_version_and_leaves_no_temp_file(tmp_path) -> None:
    target = tmp_path / "features.json"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_open(target, "w") as handle:
        handle.write("half of the new ver")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features.json"]


def test_written_files_get_normal_permissions(tmp_path) -> None:
    target = tmp_path / "model.pth"
    atomic_write_text(target, "x")
    mode = stat.S_IMODE(os.stat(target).st_mode)
    assert mode & stat.S_IRGRP and mode & stat.S_IROTH  # readable by others, unlike mkstemp's 0600


def test_second_writer_of_the_same_output_fails_clearly(tmp_path) -> None:
    target = tmp_path / "gallery.npy"
    with exclusive_lock(target):
        with pytest.raises(ReidError, match="another reid-stra process"), exclusive_lock(target):
            pass
    with exclusive_lock(target):  # released: the next writer gets it
        pass


def test_a_finished_writer_leaves_no_lock_file(tmp_path) -> None:
    from reid_stra.utils.atomic import exclusive_lock

    target = tmp_path / "feats.npy"
    with exclusive_lock(target):
        assert (tmp_path / "feats.npy.lock").exists()
    assert not (tmp_path / "feats.npy.lock").exists()
    with exclusive_lock(target):  # and the next writer locks again
        pass
    assert list(tmp_path.iterdir()) == []


def test_normal_commands_leave_no_lock_files(cli, synthetic_root, tmp_path) -> None:
    out = tmp_path / "g.npy"
    common = ["--height", "64", "--width", "32", "--workers", "0", "--device", "cpu"]
    assert cli("extract", synthetic_root / "bounding_box_test", "-o", out, *common).exit_code == 0
    assert cli("index", "build", out, "--kind", "hnsw").exit_code == 0
    assert not list(tmp_path.rglob("*.lock")), list(tmp_path.rglob("*.lock"))
