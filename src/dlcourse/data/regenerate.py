"""Rebuild the bundled data sets from their seeds, or check that they are what the code makes.

    python -m dlcourse.data.regenerate            # rebuild, update registry and data/README.md
    python -m dlcourse.data.regenerate --check    # rebuild in memory, compare, exit 1 on a difference
    python -m dlcourse.data.regenerate --out DIR  # write into DIR (public files flat, reserved
                                                  # ones under DIR/solutions/...), touch nothing else

Reserved (test) splits are rebuilt only when the instructor's seeds file
(``solutions/hidden_data_seeds.json``) is present; in the student release
it is not, and those splits are skipped. ``--new-seeds`` creates the file with
fresh 128-bit seeds (changing the test splits: re-run afterwards).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from . import catalog
from .checksums import REGISTRY_PATH, describe_arrays
from .errors import DataError
from .npzio import content_sha256, file_sha256, npz_bytes, read_npz, write_npz
from .paths import ENV_VAR, REPO_ROOT

README_BEGIN = "<!-- checksums:begin (written by python -m dlcourse.data.regenerate) -->"
README_END = "<!-- checksums:end -->"


def public_dir() -> Path:
    """Where public files are written by default: $DLCOURSE_DATA or the repo's data/."""
    override = os.environ.get(ENV_VAR)
    return Path(override).expanduser() if override else REPO_ROOT / "data"


def target_paths(split: catalog.Split, out: Path | None) -> list[Path]:
    """Files of a split: public ones in the data folder, reserved ones in solutions/."""
    paths = []
    for rel in split.paths:
        if rel.startswith("data/"):
            paths.append((out if out is not None else public_dir()) / Path(rel).name)
        else:
            paths.append((out if out is not None else REPO_ROOT) / rel)
    return paths


def read_seeds(path: Path) -> dict[str, int] | None:
    """Reserved seeds, or None when the file is absent (student release)."""
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as handle:
        return {k: int(v) for k, v in json.load(handle).items() if not k.startswith("_")}


def new_seeds(path: Path) -> dict[str, int]:
    """Add fresh random seeds for reserved splits that have none."""
    seeds = read_seeds(path) or {}
    for split in catalog.SPLITS:
        if split.reserved and split.key not in seeds:
            seeds[split.key] = secrets.randbits(128)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"_comment": "Seeds of the reserved test splits. Instructor-only: never release this file."}
    doc.update({k: str(v) for k, v in sorted(seeds.items())})
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return seeds


def build(split: catalog.Split, seeds: dict[str, int] | None) -> tuple[dict[str, np.ndarray], bytes] | None:
    """Arrays and file bytes of one split, or None if its seed is not available."""
    seed = split.seed if not split.reserved else (seeds or {}).get(split.key)
    if seed is None:
        return None
    arrays = split.build(seed)
    return arrays, npz_bytes(arrays)


def registry_entry(split: catalog.Split, arrays: dict[str, np.ndarray], data: bytes) -> dict[str, Any]:
    return {
        "files": list(split.paths),
        "reserved": split.reserved,
        "description": split.description,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "content_sha256": content_sha256(arrays),
        "arrays": describe_arrays(arrays),
    }


def write_registry(entries: dict[str, dict[str, Any]]) -> None:
    doc = {
        "_comment": "Written by `python -m dlcourse.data.regenerate`; do not edit by hand.",
        "zlib": zlib.ZLIB_RUNTIME_VERSION,
        "numpy": np.__version__,
        "datasets": {key: entries[key] for key in sorted(entries)},
    }
    REGISTRY_PATH.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def checksum_table(entries: dict[str, dict[str, Any]]) -> str:
    """The Markdown table of every file and its sha256 (kept in data/README.md)."""
    lines = ["| file | split | size | sha256 |", "|---|---|---:|---|"]
    for key in sorted(entries):
        entry = entries[key]
        for rel in entry["files"]:
            size = f"{entry['bytes'] / 1e6:.2f} MB"
            lines.append(f"| `{rel}` | {key}{' (reserved)' if entry['reserved'] else ''} | {size} | `{entry['sha256']}` |")
    total = sum(e["bytes"] * len(e["files"]) for e in entries.values())
    lines.append(f"| **all files** | | **{total / 1e6:.2f} MB** | |")
    return "\n".join(lines)


def update_readme(entries: dict[str, dict[str, Any]], readme: Path) -> bool:
    """Replace the table between the markers; False if the README or markers are missing."""
    if not readme.is_file():
        return False
    text = readme.read_text(encoding="utf-8")
    if README_BEGIN not in text or README_END not in text:
        return False
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    readme.write_text(f"{head}{README_BEGIN}\n{checksum_table(entries)}\n{README_END}{tail}", encoding="utf-8")
    return True


def _content_or_none(path: Path) -> str | None:
    try:
        return content_sha256(read_npz(path))
    except DataError:
        return None


def check(keys: list[str], seeds: dict[str, int] | None, out: Path | None) -> int:
    """Rebuild in memory and compare with the registry and the files; print a table."""
    registered = json.loads(REGISTRY_PATH.read_text(encoding="utf-8")) if REGISTRY_PATH.is_file() else {}
    entries = registered.get("datasets", {})
    same_zlib = registered.get("zlib") == zlib.ZLIB_RUNTIME_VERSION
    failures = 0
    print(f"{'split':<20} {'file':<48} result")
    for split in (catalog.split(k) for k in keys):
        built = build(split, seeds)
        if built is None:
            print(f"{split.key:<20} {'-':<48} skipped (reserved; seeds file not here)")
            continue
        arrays, data = built
        content = content_sha256(arrays)
        entry = entries.get(split.key)
        if entry is None or entry["content_sha256"] != content:
            failures += 1
            print(f"{split.key:<20} {'-':<48} FAIL: generator output differs from the registry")
            continue
        if same_zlib and hashlib.sha256(data).hexdigest() != entry["sha256"]:
            failures += 1
            print(f"{split.key:<20} {'-':<48} FAIL: same arrays but different bytes with the same zlib")
            continue
        for path in target_paths(split, out):
            shown = str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)
            if not path.is_file():
                failures += 1
                print(f"{split.key:<20} {shown:<48} FAIL: missing")
            elif file_sha256(path) == hashlib.sha256(data).hexdigest():
                print(f"{split.key:<20} {shown:<48} ok (identical bytes)")
            elif _content_or_none(path) == content:
                print(f"{split.key:<20} {shown:<48} ok (same arrays; zip bytes differ, zlib "
                      f"{zlib.ZLIB_RUNTIME_VERSION} here, {registered.get('zlib')} in the registry)")
            else:
                failures += 1
                print(f"{split.key:<20} {shown:<48} FAIL: file content differs from a fresh build")
    print("all splits reproduce" if not failures else f"{failures} problem(s)")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dlcourse.data.regenerate",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write here instead of data/ and solutions/")
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    parser.add_argument("--only", nargs="+", metavar="KEY", help="splits, e.g. cardiac/train ct/val")
    parser.add_argument("--seeds", type=Path, default=REPO_ROOT / catalog.HIDDEN_SEEDS_FILE,
                        help="reserved seeds file (default: %(default)s)")
    parser.add_argument("--new-seeds", action="store_true", help="create missing reserved seeds")
    args = parser.parse_args(argv)

    keys = args.only or [s.key for s in catalog.SPLITS]
    for key in keys:
        catalog.split(key)  # unknown keys fail early
    seeds = new_seeds(args.seeds) if args.new_seeds else read_seeds(args.seeds)
    if args.check:
        return check(keys, seeds, args.out)

    registered = json.loads(REGISTRY_PATH.read_text(encoding="utf-8")) if REGISTRY_PATH.is_file() else {}
    entries = dict(registered.get("datasets", {}))
    for split in (catalog.split(k) for k in keys):
        built = build(split, seeds)
        if built is None:
            print(f"{split.key:<20} skipped (reserved; no seeds file at {args.seeds})")
            continue
        arrays, data = built
        for path in target_paths(split, args.out):
            write_npz(path, data)
            print(f"{split.key:<20} {path}  {len(data) / 1e6:.2f} MB")
        entries[split.key] = registry_entry(split, arrays, data)
    if args.out is None:
        write_registry(entries)
        readme = public_dir() / "README.md"
        if not update_readme(entries, readme):
            print(f"note: checksum table not updated ({readme} or its markers missing)")
        print(f"registry updated: {REGISTRY_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
