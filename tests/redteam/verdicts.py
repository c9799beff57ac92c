"""What "blocked" means, as checks on a batch's evidence (:mod:`redteam.harness`).

Each check returns ``(name, ok, message)``; the tests run each as a subtest, so that every attack
that still works is reported on its own line with its evidence.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

#: The most one trusted process of the TA may hold (resident): an honest batch stays far below.
TA_MEMORY_BYTES = int(1.5 * 2**30)
#: The most bytes the TA's TMPDIR may hold at once (the jobs' private copies are a few MB).
TMP_BYTES = 512 << 20
#: What the resource attack writes into each tmpfs.
FILL_BYTES = 1_500_000_000

Check = tuple[str, bool, str]


def clean_problem(clean: dict) -> str:
    """Why the clean batch cannot serve as the reference ("" when it can): every check compares
    with it, so a grader that cannot grade honest work at all must not pass them vacuously."""
    perfect = clean_scores(clean)["perfect"]
    if perfect and _total(perfect) > 0:
        return ""
    runs = " | ".join(r["stderr"][-600:] for r in clean.get("runs", []))
    return f"the clean batch gave the perfect example {_total(perfect):g} points: {clean.get('error', '')[-800:]} {runs}"


def clean_scores(clean: dict) -> dict[str, dict[str, float | None]]:
    """{base: per-cell scores} of the clean batch: perfect, partly, untouched."""
    scores = clean["evidence"]["gradebook"]["scores"]
    return {"perfect": scores.get("zz_perfect", {}), "partly": scores.get("zz_partly", {}),
            "untouched": scores.get("untouched", {})}


def hidden_cells(clean: dict) -> list[str]:
    return clean.get("hidden_cells", [])


def _total(cells: dict[str, float | None]) -> float:
    return sum(v for v in cells.values() if v is not None)


def _scores(batch: dict) -> dict[str, dict[str, float | None]]:
    gradebook = batch["evidence"].get("gradebook", {})
    scores = dict(gradebook.get("scores", {}))
    held = batch["evidence"].get("held_scores")
    if held:  # formgrader: the gradebook as it was before the last (gradebook-aimed) submission
        for student, cells in held.get("scores", {}).items():
            scores.setdefault(student, cells)
    return scores


def _describe(batch: dict, student: str) -> str:
    ev = batch["evidence"]
    row = ev.get("csv", {}).get(student, {})
    parts = []
    if row:
        parts.append(f"status {row.get('status')!r}")
        if row.get("hidden_test_messages"):
            parts.append(f"messages {row['hidden_test_messages'][:300]!r}")
    if ev.get("reports", {}).get(student):
        parts.append("its output: " + " | ".join(ev["reports"][student][:6])[:600])
    return "; ".join(parts)


def completed(batch: dict) -> Iterator[Check]:
    problems = []
    if batch.get("error"):
        problems.append("the harness failed: " + batch["error"][-1500:])
    for ran in batch.get("runs", []):
        # nbgrader exits 1 when any notebook failed (an attacker's own may); `course grade` must not
        if ran.get("what") == "course" and (ran["rc"] != 0 or "Traceback" in ran["stderr"]):
            problems.append(f"`{ran['cmd']}` exit {ran['rc']}: {ran['stderr'][-1200:]}")
    gradebook = batch.get("evidence", {}).get("gradebook", {})
    if gradebook.get("error"):
        problems.append(gradebook["error"])
    yield "the batch completes and the gradebook is readable", not problems, "\n".join(problems)


def attackers_gain_nothing(batch: dict, clean: dict) -> Iterator[Check]:
    base_scores = clean_scores(clean)
    hidden = hidden_cells(clean)
    scores = _scores(batch)
    maxima = clean["evidence"]["gradebook"]["max"]
    for sub in batch["students"]:
        if sub["honest"]:
            continue
        student = sub["student"]
        cells = scores.get(student, {})
        base = base_scores[sub["base"]]
        wrong = []
        if _total(cells) > _total(base) + 1e-6:
            wrong.append(f"total {_total(cells):g} > {_total(base):g} of the {sub['base']} submission")
        zero = set(sub["zero_cells"]) | (set(hidden) if sub["hidden_zero"] else set())
        wrong += [f"{c} scored {cells[c]:g}" for c in sorted(zero) if cells.get(c)]
        if sub["same_as_base"] and cells != base:
            wrong.append(f"cells differ from the {sub['base']} submission's: "
                         + ", ".join(f"{c} {cells.get(c)} (clean {base.get(c)})"
                                     for c in sorted(set(cells) | set(base)) if cells.get(c) != base.get(c)))
        unknown = set(cells) - set(base)
        if unknown:
            wrong.append(f"cells the assignment does not have: {sorted(unknown)}")
        maximum = batch["evidence"].get("gradebook", {}).get("max", {}).get(student)
        if maximum is not None and maxima.get("zz_perfect") is not None and maximum != maxima["zz_perfect"]:
            wrong.append(f"its maximum is {maximum:g}, the assignment's {maxima['zz_perfect']:g}")
        detail = _describe(batch, student)
        yield (f"{sub['attack']} ({student}) gains nothing", not wrong,
               f"{student}: {'; '.join(wrong)}; scores {json.dumps(cells)}" + (f"; {detail}" if detail else ""))


def classmates_untouched(batch: dict, clean: dict) -> Iterator[Check]:
    base_scores = clean_scores(clean)
    scores = _scores(batch)
    ev = batch["evidence"]
    for sub in batch["students"]:
        if not sub["honest"]:
            continue
        student = sub["student"]
        cells, base = scores.get(student, {}), base_scores[sub["base"]]
        diff = {c: (cells.get(c), base.get(c)) for c in sorted(set(cells) | set(base)) if cells.get(c) != base.get(c)}
        detail = _describe(batch, student)
        yield (f"classmate {student} scores as in a clean batch", not diff,
               f"{student} (got, clean): {diff}" + (f"; {detail}" if detail else ""))
        changed = ev.get("classmate_files", {}).get(student, ["not checked"])
        yield f"classmate {student}'s submitted files are untouched", not changed, f"{student}: {changed}"


def nothing_outside(batch: dict) -> Iterator[Check]:
    ev = batch["evidence"]
    outside = ev.get("outside", {})
    problems = [f"{kind}: {paths[:12]}" for kind, paths in outside.items() if paths]
    files = ev.get("leftovers", {}).get("files", [])
    if files:
        problems.append(f"files named by attacks outside the grading folders: {files[:12]}")
    yield "no file outside the grading folders changes or appears", not problems, "\n".join(problems)


def no_leaks(batch: dict) -> Iterator[Check]:
    ev = batch["evidence"]
    kinds: dict[str, list[str]] = {}
    for leak in ev.get("leaks", []):
        kinds.setdefault(leak["what"], []).append(leak["where"])
    links = [f"{link['where']} -> {link['target']}" for link in ev.get("links", [])]
    for kind in ("TA secret", "TA environment", "/etc/shadow", "the gradebook", "solution source",
                 "hidden test source", "hidden file bytes"):
        where = kinds.pop(kind, [])
        yield f"no {kind} in any graded or feedback file or CSV", not where, f"{kind} in: {where[:10]}"
    others = [f"{kind} in {where[:6]}" for kind, where in kinds.items()]
    yield "no classmate's code or attacker's file in another student's folders", not others, "; ".join(others)
    yield "no links in the grading folders", not links, f"links: {links[:12]}"


def no_state_left(batch: dict) -> Iterator[Check]:
    left = batch["evidence"].get("leftovers", {})
    for kind in ("processes", "keys", "sysv"):
        yield (f"no {kind} of student code outlive the batch", not left.get(kind),
               f"{kind}: {left.get(kind, [])[:10]}")


def resources_bounded(batch: dict) -> Iterator[Check]:
    ev = batch["evidence"]
    yield ("no file of 100 MB or more in the course", not ev.get("big_files"), f"{ev.get('big_files', [])[:8]}")
    peak = max((r["ta_peak_rss"] for r in batch.get("runs", [])), default=0)
    yield (f"no trusted process of the TA holds more than {TA_MEMORY_BYTES / 2**30:g} GiB", peak <= TA_MEMORY_BYTES,
           f"peak {peak / 2**30:.2f} GiB")
    tmp = max((r["tmp_peak"] for r in batch.get("runs", [])), default=0)
    yield (f"the TA's TMPDIR never holds more than {TMP_BYTES >> 20} MiB", tmp <= TMP_BYTES,
           f"peak {tmp / 2**20:.0f} MiB")


def tmpfs_counted(batch: dict, student: str = "a08_hog") -> Iterator[Check]:
    """The resource attack's tmpfs writes either fail or stop the submission for memory."""
    if not any(s["student"] == student for s in batch["students"]):
        return
    ev = batch["evidence"]
    row = ev.get("csv", {}).get(student, {})
    stopped = "memory" in row.get("status", "")
    text = "\n".join(ev.get("reports", {}).get(student, [])) + "\n" + row.get("hidden_test_messages", "")
    filled = []
    for match in re.finditer(r"RTPWN-FILL-(KERNEL|REPEAT) (\{[^}]*\})", text):
        for folder, written in json.loads(match.group(2)).items():
            if written and written >= FILL_BYTES:
                filled.append(f"{match.group(1).lower()} {folder}: {written / 1e9:.2f} GB")
    yield ("tmpfs writes are capped or counted against the memory limit", stopped or not filled,
           f"written without a memory-limit stop: {filled}; status {row.get('status')!r}")


def scripts_inert(batch: dict) -> Iterator[Check]:
    scripts = batch["evidence"].get("scripts", [])
    yield ("no script from student output runs in feedback or formgrader", not scripts,
           "; ".join(f"{s['where']}: {s['snippet']!r}" for s in scripts[:10]))


def output_escaped(batch: dict) -> Iterator[Check]:
    ev = batch["evidence"]
    controls = [r["cmd"] for r in batch.get("runs", []) if re.search(r"[\x07\x1b]", r["stdout"] + r["stderr"])]
    yield ("CSV cells are not formulas and carry no control characters", not ev.get("csv_unsafe"),
           f"{ev.get('csv_unsafe', [])[:10]}")
    yield "no terminal control sequence reaches the TA's terminal", not controls, f"in the output of {controls}"


def gradebook_survives(batch: dict) -> Iterator[Check]:
    """Formgrader, a gradebook-aimed overwrite graded last: the gradebook still holds what it held."""
    held = batch["evidence"].get("held_scores")
    if not held:
        return
    now = batch["evidence"].get("gradebook", {})
    lost = {s: cells for s, cells in held.get("scores", {}).items() if now.get("scores", {}).get(s) != cells}
    yield ("the gradebook survives a submission aimed at it", not now.get("error") and not lost,
           f"{now.get('error', '')} changed or lost: {sorted(lost)}")


def rerun_regrades_victims(batch: dict, clean: dict) -> Iterator[Check]:
    if not batch.get("rerun"):
        return
    base_scores = clean_scores(clean)
    scores = batch["rerun"]["scores"].get("scores", {})
    for sub in batch["students"]:
        if sub["honest"]:
            cells = scores.get(sub["student"], {})
            base = base_scores[sub["base"]]
            yield (f"a rerun without --force leaves {sub['student']} as a clean batch grades it", cells == base,
                   f"after the rerun {cells}, clean {base}; rerun said: {batch['rerun']['run']['stdout'][-600:]}")


def all_checks(batch: dict, clean: dict) -> Iterator[Check]:
    yield from completed(batch)
    if not batch.get("evidence"):
        return
    yield from attackers_gain_nothing(batch, clean)
    yield from classmates_untouched(batch, clean)
    yield from nothing_outside(batch)
    yield from no_leaks(batch)
    yield from no_state_left(batch)
    yield from resources_bounded(batch)
    yield from tmpfs_counted(batch)
    yield from scripts_inert(batch)
    yield from output_escaped(batch)
    yield from gradebook_survives(batch)
    yield from rerun_regrades_victims(batch, clean)


#: The most bytes an import may write (the honest notebooks of a download are a few MB).
IMPORT_BYTES = 256 << 20


def import_checks(result: dict) -> Iterator[Check]:
    """A hostile LMS download: a one-line error and nothing imported, or the honest students
    imported and the hostile entries listed; never a crash half done, a fake student, a believed
    forged timestamp, a link followed, or gigabytes written."""
    run = result.get("run")
    yield "the harness ran the import", not result.get("error") and run is not None, result.get("error", "")[-2000:]
    if run is None:
        return
    expect = result["expect"]
    said = run["stdout"] + run["stderr"]
    students = result["students"]
    refused = run["rc"] != 0
    yield ("no traceback", "Traceback" not in said, run["stderr"][-1500:])
    if refused:
        one_line = run["stderr"].strip().count("\n") == 0
        yield ("a refused import says why in one line and imports nothing", one_line and not students,
               f"exit {run['rc']}, imported {students}; stderr: {run['stderr'][-800:]!r}")
    else:
        missing = [s for s in expect["honest"] if f"{s}/lstm/{expect['honest'][s]}" not in result["submitted"]]
        yield "every honest student is imported", not missing, f"missing {missing}; imported {students}"
        unlisted = [h for h in expect["hostile"] if h not in said]
        yield "every hostile entry is listed", not unlisted, f"not named in the output: {unlisted}"
    allowed = set(expect["honest"]) | set(expect["optional"])
    fake = [s for s in students if s not in allowed]
    yield "no student is created from a hostile entry", not fake, f"created: {[ascii(s) for s in fake]}"
    forged = expect["forged_timestamp"]
    believed = {s: t for s, t in result["timestamps"].items() if forged and forged in t}
    yield "a forged timestamp.txt is not believed", not believed, f"believed: {believed}"
    yield "nothing hostile is imported (links, TA secret, solution)", not result["bad"], f"{result['bad'][:10]}"
    big = {k: v for k, v in result["submitted"].items() if v >= 100 << 20}
    yield (f"the import writes at most {IMPORT_BYTES >> 20} MiB", run["tmp_peak"] <= IMPORT_BYTES and not big,
           f"peak {run['tmp_peak'] >> 20} MiB in the course and TMPDIR; files {big}")
    yield (f"the TA's process stays under {TA_MEMORY_BYTES / 2**30:g} GiB", run["ta_peak_rss"] <= TA_MEMORY_BYTES,
           f"peak {run['ta_peak_rss'] / 2**30:.2f} GiB")
    files = result.get("leftovers", {}).get("files", [])
    yield ("nothing outside submitted/ changes or appears", not result["outside"] and not files,
           f"changed: {result['outside'][:10]}; files: {files[:10]}")
    controls = re.findall(r"[\x07\x1b]", said)
    yield ("no CSV formula, no control character in CSVs or on the terminal",
           not result.get("csv_unsafe") and not controls,
           f"CSV: {result.get('csv_unsafe', [])[:6]}; control characters on the terminal: {len(controls)}")
