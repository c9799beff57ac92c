"""A per-user nbgrader exchange, so that the Assignment List never shows exchange errors.

This course hands assignments out and collects them through the LMS, not through
nbgrader's exchange. nbgrader's JupyterLab panels (Assignment List, Course List)
and formgrader still ask the exchange for its contents on every visit, and with
the default shared folder (``/usr/local/share/nbgrader/exchange``, which a
student cannot create) they show "Error fetching courses!" and "The exchange
directory does not exist and could not be created". Pointing the exchange at a
folder of the user's own, created on first use, makes those panels answer
"no assignments" instead; nothing is ever shared through it.
"""

from __future__ import annotations

import os

from jupyter_core.paths import jupyter_data_dir
from nbgrader.exchange.default import ExchangeList


def personal_root() -> str:
    """The user's own exchange folder (inside Jupyter's per-user data folder)."""
    return os.path.join(jupyter_data_dir(), "nbgrader", "exchange")


class PersonalExchangeList(ExchangeList):
    """nbgrader's exchange lister that creates its (per-user) root instead of failing."""

    def ensure_root(self) -> None:
        """Create the root folder, private to the user, then let nbgrader check it."""
        try:
            os.makedirs(self.root, mode=0o700, exist_ok=True)
        except OSError as error:  # nbgrader's own check reports it in its words
            self.log.warning("Could not create the exchange folder %s: %s", self.root, error)
        super().ensure_root()
