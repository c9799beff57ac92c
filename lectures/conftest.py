"""pytest settings for running the lecture notebooks with nbval.

``make test`` runs ``pytest -n 2 --nbval-lax lectures``. nbval turns every cell
into a test item, and xdist's default scheduler would hand cells of one
notebook to different workers, each with its own kernel, so later cells would
miss the variables of earlier ones. Here every notebook stays on one worker
(xdist's "loadscope" scheduling: one scope per notebook file).
"""

from __future__ import annotations

import importlib.util
from typing import Any

if importlib.util.find_spec("xdist") is not None:  # the hook exists only with pytest-xdist

    def pytest_xdist_make_scheduler(config: Any, log: Any) -> Any:
        """Schedule whole notebooks, not single cells, on the xdist workers."""
        from xdist.scheduler import LoadScopeScheduling

        return LoadScopeScheduling(config, log)
