"""Checksums catch damaged files; the registry, README and size budget agree; test splits stay hidden."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from dlcourse.data import (
    DataError,
    MissingDataError,
    data_dir,
    load_cardiac,
    load_ct_slices,
    load_signals,
)
from dlcourse.data.catalog import HIDDEN_SEEDS_FILE, SPLITS
from dlcourse.data.checksums import registry
from dlcourse.data.npzio import content_sha256, file_sha256, npz_bytes, read_npz, write_npz
from dlcourse.data.paths import REPO_ROOT
from dlcourse.data.regenerate import README_BEGIN, README_END, checksum_table

SEEDS = REPO_ROOT / HIDDEN_SEEDS_FILE


@pytest.fixture
def val_copy(tmp_path: Path) -> Path:
    target = tmp_path / "cardiac_val.npz"
    shutil.copy(data_dir() / "cardiac_val.npz", target)
    return target


def test_flipped_bytes_are_caught(val_copy):
    data = bytearray(val_copy.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    val_copy.write_bytes(bytes(data))
    with pytest.raises(DataError, match=re.escape(str(val_copy))):
        load_cardiac("val", path=val_copy)


def test_truncated_file_is_caught(val_copy):
    val_copy.write_bytes(val_copy.read_bytes()[: 100_000])
    with pytest.raises(DataError, match=re.escape(str(val_copy))):
        load_cardiac("val", path=val_copy)


def test_not_an_npz_is_caught(tmp_path):
    bogus = tmp_path / "ct_val.npz"
    bogus.write_text("images,labels\n1,2\n")
    with pytest.raises(DataError, match=re.escape(str(bogus))):
        load_ct_slices("val", path=bogus)


def test_valid_npz_with_other_content_is_caught(tmp_path):
    arrays = read_npz(data_dir() / "signals_val.npz")
    arrays["y"] = arrays["y"].copy()
    arrays["y"][0, 0] ^= 1  # a single wrong label
    edited = write_npz(tmp_path / "signals_val.npz", arrays)
    with pytest.raises(DataError, match="checksum mismatch"):
        load_signals("val", path=edited)
    # Without verification it loads: the check, not the format, caught it.
    _x, y = load_signals("val", path=edited, verify=False)
    assert y[0, 0] == arrays["y"][0, 0]


def test_recompressed_file_with_same_arrays_is_accepted(tmp_path):
    """Another zlib build may compress differently; identical arrays still pass."""
    arrays = read_npz(data_dir() / "ct_val.npz")
    other = tmp_path / "ct_val.npz"
    np.savez(other, **arrays)  # uncompressed, different bytes
    assert file_sha256(other) != file_sha256(data_dir() / "ct_val.npz")
    images, _labels = load_ct_slices("val", path=other)
    assert images.shape == (400, 64, 64, 1)


def test_structural_checks_without_verification(tmp_path):
    bad = tmp_path / "bad.npz"
    write_npz(bad, {"images": np.zeros((2, 64, 64), np.uint16), "masks": np.full((2, 64, 64), 7, np.uint8)})
    with pytest.raises(DataError, match="mask values"):
        load_cardiac("val", path=bad, verify=False)
    write_npz(bad, {"images": np.zeros((2, 64, 64), np.int16)})
    with pytest.raises(DataError, match="labels"):
        load_ct_slices("val", path=bad, verify=False)


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "hidden_cardiac_test.npz"
    with pytest.raises(MissingDataError, match=re.escape(str(missing))):
        load_cardiac("test", path=missing)


def test_npz_writer_is_deterministic_and_keeps_zero_d_arrays(tmp_path):
    arrays = {"a": np.arange(10, dtype=np.int16), "fs": np.array(100.0)}
    first, second = npz_bytes(arrays), npz_bytes(arrays)
    assert first == second
    path = write_npz(tmp_path / "x.npz", arrays)
    back = read_npz(path)
    assert back["fs"].shape == () and content_sha256(back) == content_sha256(arrays)


def test_registry_covers_every_file_with_its_real_size():
    entries = registry()["datasets"]
    assert set(entries) == {s.key for s in SPLITS}
    listed = {rel for e in entries.values() for rel in e["files"]}
    on_disk = {f"data/{p.name}" for p in data_dir().glob("*.npz")}
    assert on_disk == {rel for rel in listed if rel.startswith("data/")}
    for entry in entries.values():
        for rel in entry["files"]:
            path = REPO_ROOT / rel
            if path.is_file():
                assert path.stat().st_size == entry["bytes"], rel
                assert file_sha256(path) == entry["sha256"], rel


def test_total_size_within_budget():
    entries = registry()["datasets"].values()
    assert sum(e["bytes"] * len(e["files"]) for e in entries) <= 30e6


def test_readme_lists_every_checksum():
    readme = (data_dir() / "README.md").read_text(encoding="utf-8")
    between = readme.split(README_BEGIN, 1)[1].split(README_END, 1)[0].strip()
    assert between == checksum_table(registry()["datasets"])
    for entry in registry()["datasets"].values():
        assert entry["sha256"] in readme


def test_reserved_splits_live_only_in_solutions():
    for split in SPLITS:
        if split.reserved:
            assert all(rel.startswith("solutions/") and Path(rel).name.startswith("hidden_") for rel in split.paths)
        else:
            assert all(rel.startswith("data/") for rel in split.paths)
    assert not list(data_dir().glob("hidden_*"))


@pytest.mark.skipif(not SEEDS.is_file(), reason="seeds file not here (student release)")
def test_reserved_seeds_appear_nowhere_in_the_release():
    """Neither the package nor data/ may contain (and so reproduce) a reserved seed."""
    seeds = {k: int(v) for k, v in json.loads(SEEDS.read_text()).items() if not k.startswith("_")}
    assert set(seeds) == {s.key for s in SPLITS if s.reserved}
    assert all(seed.bit_length() > 64 for seed in seeds.values())  # not guessable
    needles = [f"{seed}".encode() for seed in seeds.values()] + [f"{seed:x}".encode() for seed in seeds.values()]
    for folder in (REPO_ROOT / "src", REPO_ROOT / "data"):
        for path in folder.rglob("*"):
            if path.is_file():
                content = path.read_bytes()
                assert not any(n in content for n in needles), path
