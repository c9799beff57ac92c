"""The course's own red team: hostile submissions, and batches that grade them with honest classmates.

- :mod:`redteam.implant`: what an attacker pastes into a notebook (never imported; pasted as text).
- :mod:`redteam.attacks`: one builder per attack: the hostile notebook and the files handed in with it.
- :mod:`redteam.archives`: hostile LMS downloads (zip and folder) and zip bombs, built cheaply.
- :mod:`redteam.harness`: a scratch course per batch, grading through one path (``course grade``,
  ``course grade --cluster``, plain ``nbgrader autograde``, formgrader's ``NbGraderAPI.autograde``)
  as the invoking user or as an ordinary user (uid 4242), and the evidence afterwards: scores,
  statuses, files, processes, keys, memory.
- :mod:`redteam.verdicts`: what "blocked" means, as checks on that evidence.

The tests are ``tests/test_redteam_*.py``; their module docstrings list the attacks and paths.
"""
