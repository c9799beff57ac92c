"""What a submission produced reaches a browser inert, a terminal escaped and a CSV without formulas."""

from __future__ import annotations

import base64
import copy
import csv
import io
from types import SimpleNamespace

import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output, new_raw_cell

from dlcourse.runner import untrusted
from dlcourse.runner.untrusted import InertNotebook, for_csv, for_terminal

PWN = "document.title='pwned'"
#: 1x1 transparent PNG
PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000005000157b0c2a10000000049454e44ae426082")).decode()
TABLE = ('<table border="1" class="dataframe"><thead><tr style="text-align: right;"><th></th><th>loss</th>'
         '</tr></thead><tbody><tr><th>0</th><td>0.693</td></tr></tbody></table>')
PANDAS_STYLE = ("<style scoped>\n    .dataframe tbody tr th {\n        vertical-align: top;\n    }\n\n"
                "    .dataframe thead th {\n        text-align: right;\n    }\n</style>\n")
HONEST_MARKDOWN = ("## Answer\n\nThe gate $\\sigma(z) < 1$, so `a<b` & c > d.\n\n> quoted\n\n- [x] done\n\n"
                   "| a | b |\n|:--|--:|\n| 1 | 2 |\n\n<br>\n<span style=\"color: red\">red</span> <sup>2</sup>\n\n"
                   "```python\nif a < b:\n    pass\n```\n\n[docs](https://keras.io) ![plot](https://example.org/p.png)\n")


def hostile_notebook():
    cells = [
        new_markdown_cell(HONEST_MARKDOWN),
        new_code_cell("plot()", execution_count=1, outputs=[new_output(
            "display_data", data={"image/png": PNG, "text/plain": "<Figure size 640x480>"},
            metadata={"needs_background": "light", "image/png": {"width": 320}})]),
        new_code_cell("df", execution_count=2, outputs=[new_output(
            "execute_result", data={"text/html": f"<div>{PANDAS_STYLE}{TABLE}</div>", "text/plain": "   loss"},
            execution_count=2)]),
        new_code_cell("print(1); 1/0", execution_count=3, outputs=[
            new_output("stream", name="stdout", text="1 <b>not bold</b>\n"),
            new_output("stream", name="stderr", text="a warning\n"),
            new_output("error", ename="ZeroDivisionError", evalue="division by zero",
                       traceback=["\x1b[0;31mZeroDivisionError\x1b[0m: division by zero"])]),
        new_code_cell("html", outputs=[new_output("display_data", data={
            "text/html": f"<b>before</b><script>{PWN}</script>", "text/plain": "<IPython.core.display.HTML>"})]),
        new_code_cell("img", outputs=[new_output("display_data", data={
            "text/html": f'<img src="x" onerror="{PWN}"><iframe src="https://evil.example"></iframe>'
                         '<form action="https://evil.example"><input name="q"></form>'})]),
        new_code_cell("svg", outputs=[new_output("display_data", data={
            "image/svg+xml": f'<svg xmlns="http://www.w3.org/2000/svg" onload="{PWN}"><script>{PWN}</script>'
                             '<circle cx="5" cy="5" r="4" fill="red"/></svg>'})]),
        new_code_cell("js", outputs=[new_output("display_data", data={
            "application/javascript": PWN, "text/plain": "<IPython.core.display.Javascript object>"})]),
        new_code_cell("widget", outputs=[new_output("display_data", data={
            "application/vnd.jupyter.widget-view+json": {"model_id": "abc", "version_major": 2}})]),
        new_code_cell("width", outputs=[new_output("display_data", data={"image/png": PNG},
                                                    metadata={"image/png": {"width": f"1 onload={PWN}"}})]),
        new_markdown_cell(f"My answer <script>{PWN}</script> and "
                          f'<a href="javascript:{PWN}">a link</a>.\n\n<img src=x onerror="{PWN}">\n'),
        new_raw_cell(f'<img src="x" onerror="{PWN}"><b>raw</b>', metadata={"raw_mimetype": "text/html"}),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    return nb


@pytest.fixture
def inert():
    original = hostile_notebook()
    nb, _ = InertNotebook().preprocess(copy.deepcopy(original), {})
    return original, nb


def _html_of(cell) -> str:
    return "".join(str(v) for out in cell.outputs for v in out.get("data", {}).values())


def test_scripts_and_handlers_are_gone_from_outputs(inert):
    _, nb = inert
    html_out, img, svg, js, widget, width = (nb.cells[i] for i in range(4, 10))
    assert html_out.outputs[0].data["text/html"] == "<b>before</b>"
    assert img.outputs[0].data["text/html"].strip() == '<img src="x">'
    svg_text = svg.outputs[0].data["image/svg+xml"]
    assert "<script" not in svg_text and "onload" not in svg_text and "pwned" not in svg_text
    assert '<circle cx="5" cy="5" r="4" fill="red"></circle>' in svg_text
    assert "application/javascript" not in js.outputs[0].data
    assert js.outputs[0].data["text/plain"].startswith("<IPython.core.display.Javascript object>\n")
    assert "[application/javascript output removed" in js.outputs[0].data["text/plain"]
    assert set(widget.outputs[0].data) == {"text/plain"}
    assert "widget-view+json output removed" in widget.outputs[0].data["text/plain"]
    assert width.outputs[0].metadata == {}  # a string width would become an unquoted attribute
    assert "widgets" not in nb.metadata
    for cell in nb.cells[4:10]:
        text = _html_of(cell)
        for dangerous in ("<script", "onerror", "onload", "iframe", "<form", "pwned", "javascript:"):
            assert dangerous not in text, (dangerous, text)


def test_markdown_and_raw_cells_lose_their_dangerous_html(inert):
    _, nb = inert
    markdown, raw = nb.cells[10], nb.cells[11]
    for dangerous in ("<script", "javascript:", "onerror"):
        assert dangerous not in markdown.source
        assert dangerous not in raw.source
    assert "My answer" in markdown.source and "a link" in markdown.source
    assert untrusted.MARKDOWN_NOTE in markdown.source
    rendered, _ = untrusted._render_markdown(markdown.source, None)
    assert "<script" not in rendered and "onerror" not in rendered and "javascript:" not in rendered
    assert raw.source == '<img src="x"><b>raw</b>'


def test_honest_outputs_stay_as_they_were(inert):
    original, nb = inert
    assert nb.cells[0].source == HONEST_MARKDOWN  # byte for byte
    plot = nb.cells[1].outputs[0]
    assert plot.data == original.cells[1].outputs[0].data
    assert plot.metadata == {"needs_background": "light", "image/png": {"width": 320}}
    table = nb.cells[2].outputs[0]
    assert table.execution_count == 2
    assert TABLE in table.data["text/html"]  # the plain table, tag for tag
    assert ".dataframe thead th" in table.data["text/html"]  # pandas' own header alignment stays
    assert nb.cells[3].outputs == original.cells[3].outputs  # text, stderr and the traceback unchanged
    assert nb.cells[3].outputs[1].name == "stderr"  # a cell's verdict reads these


def test_a_plain_table_and_a_pandas_style_sheet_survive_cleaning():
    assert untrusted.sanitize_html(TABLE) == TABLE
    assert untrusted.html_is_inert(TABLE)
    kept = untrusted.sanitize_html(PANDAS_STYLE)
    assert kept.startswith("<style>.dataframe tbody tr th {") and "text-align: right;" in kept
    for style in (".dataframe ~ div { display: none }", ".x, .dataframe th { color: red }",
                  ".dataframe th { position: fixed }", ".dataframe th { font-family: url(https://e.org/f) }",
                  "@import url(https://e.org/x.css);"):
        assert untrusted.sanitize_html(f"<style>{style}</style>x") == "x", style


def test_what_the_kernel_sent_is_rebuilt_to_nbformat():
    cell = new_code_cell("x")
    cell.execution_count = "<script>1</script>"
    cell.outputs = [{"output_type": "execute_result", "execution_count": "9]<img>", "data": {"text/plain": "1"},
                     "metadata": {"filenames": {"image/png": "../../gradebook.db"}}, "svg_filename": "x"},
                    {"output_type": "stream", "name": "stdpwn", "text": "t"},
                    {"output_type": "update_display_data", "data": {}}]
    nb = new_notebook()
    nb.cells = [cell]  # as read from disk: nbformat's schema does not hold the kernel back
    nb, _ = InertNotebook().preprocess(nb, {})
    out = nb.cells[0]
    assert out.execution_count is None
    assert dict(out.outputs[0]) == {"output_type": "execute_result", "data": {"text/plain": "1"},
                                    "metadata": {}, "execution_count": None}
    assert out.outputs[1].name == "stdout"
    assert out.outputs[2].output_type == "stream" and "removed" in out.outputs[2].text


def test_a_heading_cannot_take_the_id_of_a_formgrader_field():
    answer = new_markdown_cell("# test_sigmoid\n\nmy answer")
    test = new_code_cell("assert True")
    test.metadata["nbgrader"] = {"grade": True, "grade_id": "test_sigmoid", "points": 2}
    nb, _ = InertNotebook().preprocess(new_notebook(cells=[answer, test]), {})
    rendered, _ = untrusted._render_markdown(nb.cells[0].source, None)
    assert 'id="test_sigmoid"' not in rendered and "my answer" in rendered
    assert untrusted.sanitize_markdown("# Sigmoid\n\nok") == "# Sigmoid\n\nok"


@pytest.mark.parametrize("value, cell", [
    ('=HYPERLINK("http://evil.example","click")', '\'=HYPERLINK("http://evil.example","click")'),
    ("+1", "'+1"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"), ("\t=1", "'\t=1"), ("\r=1", "'\r=1"),
    ("plain text", "plain text"), ("a=b", "a=b"), ("not graded: -1", "not graded: -1"),
    (2, "2"), (2.5, "2.5"), (-2.0, "-2"), (0.0, "0"), (None, ""),
])
def test_for_csv(value, cell):
    assert for_csv(value) == cell


@pytest.mark.parametrize("text, shown", [
    ("\x1b[2J", "\\x1b[2J"), ("a\nb", "a\\nb"), ("\r", "\\r"), ("x\x07\x08\x9b", "x\\x07\\x08\\x9b"),
    ("abc\u202edcba", "abc\\u202edcba"), ("caf\u00e9 m\u00fcller", "caf\u00e9 m\u00fcller"),
    ("s\udcff", "s\\udcff"), (None, ""),
])
def test_for_terminal(text, shown):
    assert for_terminal(text) == shown
    assert "\n" not in for_terminal(text)


def test_a_failure_message_starting_with_a_formula_is_escaped_in_the_csv(tmp_path):
    from dlcourse.runner.reports import StudentScore, write_csvs

    row = StudentScore("=cmd|' /C calc'!A0", score=1.0, max_score=3.0, status="graded",
                       questions={"test_a": 1.0, "test_b": 0.0}, question_max={"test_a": 1.0, "test_b": 2.0},
                       findings=['=HYPERLINK("http://evil.example","read me")'], hidden_failed=["test_b"],
                       hidden_messages={"test_b": "=2+2"})
    totals, per_question = write_csvs(tmp_path, "tiny", ["test_a", "test_b"], [row])
    with totals.open(newline="") as fh:
        line = next(csv.DictReader(fh))
    assert line["student_id"] == "'=cmd|' /C calc'!A0"
    assert line["tampering"] == '\'=HYPERLINK("http://evil.example","read me")'
    assert line["hidden_test_messages"] == "test_b: =2+2"  # starts with the test's name: no formula
    assert (line["score"], line["max_score"]) == ("1", "3")  # numbers stay numbers
    with per_question.open(newline="") as fh:
        assert next(csv.reader(fh, delimiter=",")) and next(csv.reader(fh)) == [
            "'=cmd|' /C calc'!A0", "1", "0", "1", "3"]


def test_terminal_lines_and_tables_show_submissions_text_literally():
    from rich.console import Console

    from dlcourse.cli.main import _outcome_line
    from dlcourse.runner.autograde import Outcome
    from dlcourse.runner.reports import StudentScore, score_table

    evil = "[bold red]mallory[/bold red]\x1b[2J\nfake: graded"
    graded = SimpleNamespace(outcome=Outcome(evil, ok=False, reason="kernel said \x1b]0;owned\x07"),
                             hidden_failed=[], review=["cell\r\nsecond"])
    line = _outcome_line(graded)
    assert "\x1b" not in line and "\n" not in line and "\r" not in line and "\x07" not in line
    assert "\\x1b[2J\\nfake: graded" in line and "cell\\r\\nsecond" in line
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(score_table("tiny", ["q"], [StudentScore(evil, status=f"not graded: {evil}")]))
    shown = console.file.getvalue()
    assert "\x1b" not in shown and "[bold red]mallory[/bold red]" in shown


def test_the_course_configuration_makes_autograded_notebooks_and_their_pages_inert(repo_course):
    from nbgrader.converters import GenerateFeedback
    from nbgrader.coursedir import CourseDirectory

    from dlcourse.runner import nbgrader_api, nbgrader_plugins

    config = nbgrader_api.load_config(repo_course)
    steps = list(config.Autograde.autograde_preprocessors)
    here = steps.index("dlcourse.runner.untrusted.InertNotebook")
    # After everything that runs or changes outputs (the last of them is HideMachinePaths).
    assert steps.index(nbgrader_plugins.StderrIsNotFailure) < steps.index(nbgrader_plugins.HideMachinePaths) < here
    assert config.HTMLExporter.sanitize_html is True  # feedback and formgrader's exporter alike
    feedback = GenerateFeedback(coursedir=CourseDirectory(config=config), config=config)
    exporter = feedback.exporter_class(parent=feedback, config=feedback.config)
    nb, _ = InertNotebook().preprocess(hostile_notebook(), {})
    resources = {"nbgrader": {"notebook": "tiny", "score": 0, "max_score": 0, "late_penalty": 0}}
    page, _ = exporter.from_notebook_node(nb, resources=resources)
    for dangerous in ("<script>document", "onerror", "onload", 'href="javascript:', "<iframe", "<form"):
        assert dangerous not in page, dangerous
    assert "<thead>" in page and "&lt;thead&gt;" not in page  # the table renders as a table
    assert f"data:image/png;base64,{PNG}" in page


def test_markup_too_big_or_tangled_to_parse_quickly_is_not_shown_as_html():
    import time

    # html5lib reopens every unclosed <b> after each later tag: 300 x 300 make 90,000 elements.
    tangled = "<div>" + "".join(f"<b id={i}>" for i in range(300)) + "</div>" + "<div>x</div>" * 300
    deep = "<div>" * 6000 + "x" + "</div>" * 6000
    cell = new_code_cell("x", outputs=[new_output("display_data", data={"text/html": tangled, "text/plain": "p"}),
                                        new_output("display_data", data={"text/html": deep})])
    started = time.monotonic()
    nb, _ = InertNotebook().preprocess(new_notebook(cells=[cell, new_markdown_cell(tangled)]), {})
    assert time.monotonic() - started < 5
    first, second = nb.cells[0].outputs
    assert set(first.data) == {"text/plain"} and first.data["text/plain"].startswith("p\n[text/html output removed")
    assert "too large or too deeply tangled" in second.data["text/plain"]
    assert nb.cells[1].source.startswith(untrusted.MARKDOWN_AS_TEXT_NOTE)
    assert untrusted.sanitize_html(deep).startswith("<pre>[HTML removed: too large")  # the render-time filter too
