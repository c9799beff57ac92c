"""Jupyter server extension for the TA's JupyterLab: formgrader's Manage Submissions page says
which hand-ins could not be graded, why, and which came in late.

`course grade` records a hand-in it could not grade (not a notebook, time or memory limit, a
crash) with 0 points and the reason in its comments; formgrader's list then showed it as a green
"graded" 0 / max, the reason only on the submission's own page, and lateness nowhere. This
extension adds an endpoint with those facts from the gradebook and a small script on the Manage
Submissions page that marks such rows "not graded" with the reason, and late ones "late".
``jupyter/jupyter_server_config.py`` enables it for the course's `make lab`.
"""

from __future__ import annotations

import json
from typing import Any

#: How `course grade` starts the comment of a hand-in it could not grade (dlcourse.runner.gradebook).
NOT_GRADED = "Not graded: "

SCRIPT = """<script>
(function () {
  var url = base_url + "/dlcourse/submission_notes/" + encodeURIComponent(assignment_id);
  function apply(notes) {
    $("tbody tr").each(function () {
      var row = $(this), note = notes[row.find("td.student-id").text().trim()];
      if (!note) { return; }
      var status = row.find("td.status");
      if (note.reason && !status.find(".dlcourse-not-graded").length) {
        status.empty().attr("data-order", -1)
          .append($("<span/>").addClass("label label-danger dlcourse-not-graded").text("not graded"))
          .append($("<div/>").addClass("small text-danger dlcourse-reason").text(note.reason));
      }
      if (note.late && !status.find(".dlcourse-late").length) {
        status.append($("<div/>").append($("<span/>").addClass("label label-warning dlcourse-late")
          .text("late: " + note.late)));
      }
    });
  }
  $.getJSON(url).done(function (notes) {
    apply(notes);
    // formgrader draws its rows later, and again after each Autograde
    new MutationObserver(function () { apply(notes); })
      .observe(document.querySelector("table") || document.body, {childList: true, subtree: true});
  });
})();
</script>"""


def _late(seconds: float) -> str:
    """A lateness as a person reads it."""
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{max(minutes, 1)} min"
    hours = minutes / 60
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def submission_notes(db_url: str, assignment: str) -> dict[str, dict[str, Any]]:
    """Per student: why the hand-in was not graded (if so) and how late it came (if so)."""
    from nbgrader.api import Gradebook, MissingEntry

    notes: dict[str, dict[str, Any]] = {}
    with Gradebook(db_url) as gb:
        try:
            submissions = gb.find_assignment(assignment).submissions
        except MissingEntry:
            return {}
        for submission in submissions:
            reasons = [c.auto_comment[len(NOT_GRADED):] for nb in submission.notebooks for c in nb.comments
                       if c.auto_comment and c.auto_comment.startswith(NOT_GRADED)]
            late = float(submission.total_seconds_late or 0)
            note: dict[str, Any] = {}
            if reasons:
                note["reason"] = reasons[0]
            if late > 0:
                note["late"] = _late(late)
            if note:
                notes[submission.student.id] = note
    return notes


def _patch_formgrader_pages() -> None:
    """Add :data:`SCRIPT` to formgrader's Manage Submissions page (once per process)."""
    from nbgrader.server_extensions.formgrader import base

    original = base.BaseHandler.render
    if getattr(original, "dlcourse_notes", False):
        return

    def render(self, name: str, **ns: Any) -> str:
        page = original(self, name, **ns)
        if name == "manage_submissions.tpl" and "</body>" in page:
            page = page.replace("</body>", SCRIPT + "\n</body>", 1)
        return page

    render.dlcourse_notes = True  # type: ignore[attr-defined]
    base.BaseHandler.render = render


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Register the notes endpoint and the page script."""
    from jupyter_server.base.handlers import JupyterHandler
    from jupyter_server.utils import url_path_join
    from tornado import web

    class SubmissionNotesHandler(JupyterHandler):
        @web.authenticated
        def get(self, assignment: str) -> None:
            db_url = self.settings.get("nbgrader_db_url")
            if not db_url:
                raise web.HTTPError(404, "formgrader is not running")
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(submission_notes(db_url, assignment)))

    _patch_formgrader_pages()
    webapp = serverapp.web_app
    route = url_path_join(webapp.settings["base_url"], r"/dlcourse/submission_notes/([^/]+)")
    webapp.add_handlers(".*$", [(route, SubmissionNotesHandler)])


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "dlcourse.runner.formgrader_notes"}]
