"""Regenerating every data set from its seed reproduces the committed files bit for bit."""

from __future__ import annotations

import hashlib
import zlib

import pytest

from dlcourse.data import catalog
from dlcourse.data.checksums import registry
from dlcourse.data.npzio import content_sha256, file_sha256, read_npz
from dlcourse.data.paths import REPO_ROOT
from dlcourse.data.regenerate import build, main, read_seeds, target_paths

SEEDS = read_seeds(REPO_ROOT / catalog.HIDDEN_SEEDS_FILE)


@pytest.mark.parametrize("key", [s.key for s in catalog.SPLITS])
def test_split_reproduces(key):
    split = catalog.split(key)
    if split.reserved and SEEDS is None:
        pytest.skip("reserved split: seeds file not here (student release)")
    arrays, data = build(split, SEEDS)
    entry = registry()["datasets"][key]
    assert content_sha256(arrays) == entry["content_sha256"]
    same_zlib = registry()["zlib"] == zlib.ZLIB_RUNTIME_VERSION
    for path in target_paths(split, None):
        if not path.is_file():
            assert split.reserved, f"public file missing: {path}"
            continue
        committed = read_npz(path)
        assert content_sha256(committed) == content_sha256(arrays)
        for name, array in arrays.items():
            assert committed[name].dtype == array.dtype and committed[name].shape == array.shape
        if same_zlib:  # the bytes too (other zlib builds compress differently)
            assert file_sha256(path) == hashlib.sha256(data).hexdigest() == entry["sha256"]


def test_cli_writes_identical_files_elsewhere(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--only", "signals/val"]) == 0
    written, committed = tmp_path / "signals_val.npz", REPO_ROOT / "data" / "signals_val.npz"
    assert content_sha256(read_npz(written)) == content_sha256(read_npz(committed))
    if registry()["zlib"] == zlib.ZLIB_RUNTIME_VERSION:
        assert written.read_bytes() == committed.read_bytes()
    assert main(["--check", "--out", str(tmp_path), "--only", "signals/val"]) == 0
    assert "all splits reproduce" in capsys.readouterr().out


def test_cli_check_detects_a_changed_file(tmp_path, capsys):
    main(["--out", str(tmp_path), "--only", "signals/val"])
    (tmp_path / "signals_val.npz").write_bytes(b"not the data")
    assert main(["--check", "--out", str(tmp_path), "--only", "signals/val"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_reserved_splits_are_skipped_without_seeds(tmp_path, capsys):
    code = main(["--check", "--only", "signals/test", "--seeds", str(tmp_path / "absent.json")])
    assert code == 0
    assert "skipped" in capsys.readouterr().out
    main(["--out", str(tmp_path), "--only", "cardiac/test", "--seeds", str(tmp_path / "absent.json")])
    assert not list(tmp_path.rglob("*.npz"))


def test_unknown_split_is_an_error():
    with pytest.raises(KeyError, match="unknown split"):
        main(["--check", "--only", "mnist/train"])
