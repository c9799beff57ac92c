"""nbgrader settings of the student edition: what JupyterLab's Validate button does.

The button runs the notebook through nbgrader's validator; these hooks make its
dialog name failing cells by their grade_id (the names `course validate` uses)
instead of printing their whole code.
"""

from dlcourse.validate import name_cells_for_validate_button

c = get_config()  # noqa: F821 - injected by traitlets

c.Execute.timeout = 300
c.Execute.startup_timeout = 120
c.Execute.on_notebook_start = name_cells_for_validate_button
c.Execute.on_cell_complete = name_cells_for_validate_button
