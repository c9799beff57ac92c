"""nbgrader settings of the student edition: JupyterLab's Validate button and nbgrader panels.

The button runs the notebook through nbgrader's validator; these hooks make its
dialog name failing cells by their grade_id (the names `course validate` uses)
instead of printing their whole code, and list cells outside the tests that raised
(log lines on stderr fail nothing, as when graded). The dialog's note on hidden
tests comes from the lab extension in jupyter/labextensions. Work is handed in through the LMS, not
nbgrader's exchange: a folder of the student's own keeps the Assignment List
panel from showing exchange errors.
"""

from dlcourse import lab_exchange
from dlcourse.validate import name_cells_for_validate_button, report_cells_for_validate_button

c = get_config()  # noqa: F821 - injected by traitlets

c.Exchange.root = lab_exchange.personal_root()
c.ExchangeFactory.list = lab_exchange.PersonalExchangeList

c.Execute.timeout = 300
c.Execute.startup_timeout = 120
c.Validator.validate_all = True
c.Execute.on_notebook_start = name_cells_for_validate_button
c.Execute.on_cell_complete = name_cells_for_validate_button
c.Execute.on_cell_start = report_cells_for_validate_button
c.Execute.on_cell_error = report_cells_for_validate_button
