"""Red team, importing an LMS download: `course grade lstm --from <download>` with hostile entries.

Each download goes to a fresh scratch course, as the invoking user (root in CI) and as uid 4242
(``setpriv``; skipped only when not root). Honest entries hold a cut-off notebook (imported, then
failed at once, so that no kernel runs). Downloads (:func:`redteam.archives.downloads`):

- ``names``: a Canvas zip with a forged ``<name>_<uid>_<sub>_timestamp.txt``, a Canvas name that is
  a spreadsheet formula, and ``<student>/<file>`` entries whose student id is ``*``, ``-rf``,
  terminal control characters, 300 characters, or has a space;
- ``dotdot``: entries named ``..``, ``evil/..``, ``../x``, ``../../x``, ``a/../../x``, ``/tmp/x``,
  a Canvas entry whose file is ``..`` or climbs out, and symlink entries to the TA's secret file and
  the solution notebook;
- ``bomb``: two entries of 1 GiB of zeros each, about 1 MB compressed;
- ``folder-links`` (a folder download, as `unzip` leaves one): a student's notebook, model and notes
  that are links to the solution notebook, the solution's model and the TA's secret file, a student
  folder that is a link to the TA's secret folder, and a notebook linked to a classmate's;
- ``everything``: ``names`` and ``dotdot`` in one zip (the ordinary user's run).

Blocked means: a one-line error and nothing imported, or the honest students imported and every
hostile entry listed; no traceback, no fake student, the forged timestamp not believed, no link
followed and no secret or solution imported, at most 256 MiB written (course and TMPDIR sampled
while it runs) and the TA's process under 1.5 GiB, nothing outside ``submitted/`` written, no
formula or control character in the CSVs or on the terminal.
"""

from __future__ import annotations

import pytest
from redteam import harness, verdicts

pytestmark = pytest.mark.slow

VARIANTS = {"root": ["names", "dotdot", "bomb", "folder-links"], "user": ["everything", "bomb", "folder-links"]}


@pytest.mark.parametrize("user", ["root", "user"])
def test_hostile_lms_downloads(user, subtests, tmp_path_factory):
    reason = harness.skip_reason(user)
    if reason:
        pytest.skip(reason)
    base = tmp_path_factory.getbasetemp().parent
    for variant in VARIANTS[user]:
        result = harness.shared(f"lms-{user}-{variant}", base,
                                lambda variant=variant: harness.import_download(f"lms-{user}", user, variant))
        for name, ok, message in verdicts.import_checks(result):
            with subtests.test(msg=f"{variant}: {name}"):
                assert ok, message
