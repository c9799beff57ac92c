"""What a submission produced, made safe for where it is shown: a terminal, a CSV, a browser.

Everything a student's notebook carries or its code printed is untrusted text:
file and folder names, cell sources, outputs (the kernel runs the student's code,
so even an output's type, metadata and execution count are theirs), error
messages. Three sinks, three escapes:

- a terminal (:func:`for_terminal`): control characters and escape sequences are
  shown escaped (``\\x1b``), never interpreted; one reported item stays one line;
- a CSV (:func:`for_csv`): a cell a spreadsheet would run as a formula is
  prefixed with ``'`` (OWASP's advice); the grader's own numbers stay numbers;
- a browser: :class:`InertNotebook`, an autograde preprocessor, makes the
  graded notebook inert before nbgrader saves it -- the notebook formgrader
  renders and feedback is made from. HTML is cleaned with bleach (the cleaner
  nbconvert's own ``SanitizeHTML`` and ``clean_html`` use) against an allowlist
  of tags, attributes, URL schemes and CSS properties; outputs that are code
  (JavaScript, widget views) are dropped with a plain-text note. Markdown
  stays markdown: a cell whose rendering is already inert is kept byte for
  byte; otherwise only its raw HTML is cleaned, and a cell that still would not
  be inert is shown as text. :func:`clean_html` replaces nbconvert's filter of
  that name where an exporter sanitises (``HTMLExporter.sanitize_html``), so a
  second pass at render time keeps honest tables and styles intact. Markup is
  measured before bleach parses it (see MAX_TAGS): what is too big or tangled
  to check in bounded time is not shown as HTML at all.
"""

from __future__ import annotations

import contextvars
import html
import numbers
import re
import unicodedata
from collections.abc import Iterator
from typing import Any

import bleach
from bleach.css_sanitizer import ALLOWED_CSS_PROPERTIES, ALLOWED_SVG_PROPERTIES, CSSSanitizer
from bleach.html5lib_shim import HTML_TAGS, Filter
from bleach.sanitizer import BleachSanitizerFilter
from nbconvert.preprocessors import Preprocessor
from nbformat import NotebookNode
from traitlets import Bool

# ---------------------------------------------------------------- terminal --

_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: Unicode categories never shown as themselves: controls (C0, DEL, C1 -- 0x9b is
#: an 8-bit CSI), format characters (bidi overrides, zero-width), lone surrogates
#: (undecodable bytes in a file name; printing one raises), line/paragraph separators.
_ESCAPED_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}


def _escape_char(char: str) -> str:
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _escape_controls(text: str, keep: str = "") -> str:
    if text.isprintable() and text.isascii():
        return text
    return "".join(_escape_char(c) if c not in keep and unicodedata.category(c) in _ESCAPED_CATEGORIES else c
                   for c in text)


def for_terminal(text: object) -> str:
    """``text`` as one line a terminal shows literally.

    Control characters (ESC, CR, BEL, backspace, C1 controls), bidi and other
    format characters, lone surrogates and line breaks appear escaped
    (``\\x1b[2J``, ``\\n``), so a submission can neither clear, recolour nor
    rewrite the TA's terminal, nor split one reported item over several lines.
    """
    return _escape_controls("" if text is None else str(text))


# --------------------------------------------------------------------- CSV --

#: First characters that make a spreadsheet read a cell as a formula (OWASP, CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


#: Characters a name never needs and a page that shows it unescaped (formgrader) could run.
_MARKUP = str.maketrans({"<": None, ">": None, "&": None, '"': None, "`": None, "'": "’"})


def for_name(text: object, limit: int = 100) -> str:
    """A person's name as it goes into the gradebook, which formgrader prints without escaping
    it: no control characters, no markup characters (an apostrophe becomes a typographic one,
    O’Brien), one line, at most ``limit`` characters."""
    plain = _escape_controls(str(text)).translate(_MARKUP)
    return " ".join(plain.split())[:limit]


def for_csv(value: object) -> str:
    """A CSV cell: numbers as the grader writes them, text that cannot run as a formula.

    Text starting with ``= + - @``, a tab or a carriage return gets a leading
    ``'`` (OWASP's advice); control characters other than tab and line breaks
    (which the csv module quotes) are escaped as for a terminal. A number
    (``int``, ``float``; not ``bool``) is written as a number: floats as ``:g``,
    the format of every score in the course's CSVs.
    """
    if value is None:
        return ""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return str(int(value)) if isinstance(value, numbers.Integral) else f"{float(value):g}"
    text = _escape_controls(str(value), keep="\t\n\r")
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


# -------------------------------------------------------------------- HTML --

#: Tags kept in HTML from a submission: text structure, tables, images, lists.
#: No scripts, styles, frames, forms, embeds, media or document-level tags.
HTML_TAGS_ALLOWED = frozenset({
    "a", "abbr", "acronym", "address", "article", "aside", "b", "bdi", "bdo", "big", "blockquote", "br",
    "caption", "center", "cite", "code", "col", "colgroup", "dd", "del", "details", "dfn", "div", "dl",
    "dt", "em", "figcaption", "figure", "font", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header",
    "hr", "i", "img", "input", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "rp", "rt", "ruby", "s",
    "samp", "section", "small", "span", "strike", "strong", "sub", "summary", "sup", "table", "tbody",
    "td", "tfoot", "th", "thead", "time", "tr", "tt", "u", "ul", "var", "wbr",
})
#: SVG elements kept in an SVG output (what plotting libraries draw with).
SVG_TAGS_ALLOWED = frozenset({
    "svg", "g", "path", "rect", "circle", "ellipse", "line", "polyline", "polygon", "text", "tspan",
    "defs", "clipPath", "clippath", "mask", "pattern", "marker", "symbol", "use", "linearGradient",
    "lineargradient", "radialGradient", "radialgradient", "stop", "title", "desc",
})
#: Elements removed together with everything inside them (their text would be
#: noise: a style sheet, a script's source), not just their tags.
DROPPED_WITH_CONTENT = frozenset({
    "script", "style", "template", "iframe", "frame", "frameset", "object", "embed", "applet",
    "noembed", "noframes", "noscript", "xmp", "textarea", "select", "metadata",
})

_GLOBAL_ATTRIBUTES = frozenset({"class", "title", "lang", "dir", "style", "align"})
_HTML_ATTRIBUTES = {
    "a": {"href"}, "img": {"src", "alt", "width", "height"}, "table": {"border", "cellpadding",
    "cellspacing", "width", "summary"}, "td": {"colspan", "rowspan", "valign", "width", "height"},
    "th": {"colspan", "rowspan", "valign", "scope", "width", "height"}, "col": {"span", "width"},
    "colgroup": {"span", "width"}, "ol": {"start", "type", "reversed"}, "ul": {"type"}, "li": {"value"},
    "font": {"color", "face", "size"}, "time": {"datetime"}, "q": {"cite"}, "blockquote": {"cite"},
    "del": {"cite", "datetime"}, "ins": {"cite", "datetime"}, "details": {"open"},
    "input": {"type", "checked", "disabled"},  # only a disabled checkbox is kept (_DropWithContent)
    **{f"h{level}": {"id"} for level in range(1, 7)},  # nbconvert's heading anchors
}
_SVG_ATTRIBUTES = frozenset({
    "id", "class", "style", "x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "rx", "ry", "fx", "fy",
    "width", "height", "d", "points", "transform", "viewBox", "viewbox", "preserveAspectRatio",
    "preserveaspectratio", "version", "xmlns", "fill", "fill-opacity", "fill-rule", "stroke",
    "stroke-width", "stroke-linecap", "stroke-linejoin", "stroke-dasharray", "stroke-dashoffset",
    "stroke-miterlimit", "stroke-opacity", "opacity", "clip-path", "clip-rule", "clipPathUnits",
    "mask", "maskUnits", "font-family", "font-size", "font-weight", "font-style", "text-anchor",
    "dominant-baseline", "alignment-baseline", "baseline-shift", "dx", "dy", "rotate", "textLength",
    "offset", "stop-color", "stop-opacity", "gradientUnits", "gradientTransform", "spreadMethod",
    "markerWidth", "markerHeight", "refX", "refY", "orient", "markerUnits", "patternUnits",
    "patternTransform", "patternContentUnits", "href", "visibility", "display", "color",
    "letter-spacing", "word-spacing", "vector-effect", "shape-rendering", "text-rendering",
})
#: URL schemes a link may use; images may also be ``data:`` (an image cannot run code).
LINK_PROTOCOLS = frozenset({"http", "https", "mailto"})
#: CSS properties kept in ``style`` attributes: bleach's list without ``cursor``
#: (it takes a URL), plus harmless layout ones honest outputs use (rich, pandas).
#: Nothing positions an element outside its own box (no position, margins, z-index).
CSS_PROPERTIES_ALLOWED = (ALLOWED_CSS_PROPERTIES - {"cursor"}) | {
    "overflow-x", "overflow-y", "padding", "padding-top", "padding-right", "padding-bottom",
    "padding-left", "border", "border-top", "border-right", "border-bottom", "border-left",
    "border-width", "border-style", "border-spacing", "max-width", "min-width", "max-height",
    "min-height", "text-transform", "word-wrap", "word-break", "overflow-wrap", "tab-size",
}

_LINK_CHECK = bleach.Cleaner(tags={"a"}, attributes={"a": ["href"]}, protocols=LINK_PROTOCOLS, strip=True)


def _link_allowed(value: str) -> bool:
    """True for a link target bleach accepts with only http(s)/mailto (or none): no data: pages."""
    return "href=" in _LINK_CHECK.clean(f'<a href="{html.escape(value, quote=True)}"></a>')


#: Element ids formgrader's page looks up (a grade_id, ``<id>-comment``, ``<id>_extra_credit``):
#: a heading with one of them would capture the TA's score and comment fields.
_RESERVED_IDS: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("reserved_ids",
                                                                              default=frozenset())


def _html_attribute(tag: str, name: str, value: str) -> bool:
    if name in _GLOBAL_ATTRIBUTES or name in _HTML_ATTRIBUTES.get(tag, ()):
        if name in ("href", "cite"):
            return _link_allowed(value)
        if name == "id":
            return value not in _RESERVED_IDS.get()
        return True
    return False


def _svg_attribute(tag: str, name: str, value: str) -> bool:
    if tag == "svg" and name.startswith("xmlns"):
        return True
    if name in ("href", "xlink:href"):  # bleach names xlink:href by its local name
        return value.strip().startswith("#")  # references inside the drawing only
    if name == "id":
        return value not in _RESERVED_IDS.get()
    return name in _SVG_ATTRIBUTES


class _DropWithContent(Filter):
    """html5lib filter: remove :data:`DROPPED_WITH_CONTENT` elements and all they hold, and
    every ``<input>`` but a disabled checkbox (what markdown task lists render). With
    ``table_styles``, a style sheet that only styles pandas' tables stays (see :func:`table_css`)."""

    table_styles = False

    def __iter__(self) -> Iterator[dict]:
        depth, outer, start, text = 0, "", None, []
        for token in super().__iter__():
            kind, name = token["type"], str(token.get("name", "")).lower()
            if name in DROPPED_WITH_CONTENT and kind in ("StartTag", "EndTag", "EmptyTag"):
                if kind == "StartTag":
                    if depth == 0:
                        outer, start, text = name, token, []
                    depth += 1
                elif kind == "EndTag":
                    depth -= 1
                    css = table_css("".join(text)) if self.table_styles and depth == 0 and outer == "style" else None
                    if css:
                        yield {**start, "data": {}}
                        yield {"type": "Characters", "data": css}
                        yield token
                continue
            if depth > 0:
                if kind in ("Characters", "SpaceCharacters"):
                    text.append(token["data"])
                continue
            if name == "input" and not _is_task_checkbox(token):
                continue
            yield token


class _KeepTableStyles(_DropWithContent):
    table_styles = True


def _selector_scoped(tokens: list) -> bool:
    """``.dataframe`` first, then only descendant and child steps: nothing outside the table."""
    while tokens and tokens[0].type == "whitespace":
        tokens = tokens[1:]
    if len(tokens) < 2 or tokens[0].type != "literal" or tokens[0].value != "." \
            or tokens[1].type != "ident" or tokens[1].lower_value != "dataframe":
        return False
    return all(t.type in ("ident", "whitespace", "hash") or (t.type == "literal" and t.value in ".:>*")
               for t in tokens[2:])


def table_css(css: str) -> str | None:
    """A style sheet that only styles pandas' tables, re-serialised; None for any other.

    pandas puts ``<style scoped>`` rules for ``.dataframe`` before every table it
    shows (header alignment). Kept only when every rule's selectors start with
    ``.dataframe`` and go no further than its descendants, every property is in
    :data:`CSS_PROPERTIES_ALLOWED` and no value calls a function (``url()``).
    """
    import tinycss2

    rules = tinycss2.parse_stylesheet(css, skip_comments=True, skip_whitespace=True)
    for rule in rules:
        if rule.type != "qualified-rule":
            return None
        selectors, current = [], []
        for token in rule.prelude:
            if token.type == "literal" and token.value == ",":
                selectors.append(current)
                current = []
            else:
                current.append(token)
        if not all(_selector_scoped(sel) for sel in [*selectors, current]):
            return None
        for declaration in tinycss2.parse_declaration_list(rule.content, skip_comments=True,
                                                           skip_whitespace=True):
            if declaration.type != "declaration" or declaration.lower_name not in CSS_PROPERTIES_ALLOWED:
                return None
            if any(t.type in ("function", "url", "() block", "[] block", "{} block") for t in declaration.value):
                return None
    return tinycss2.serialize(rules) if rules else None


def _is_task_checkbox(token: dict) -> bool:
    attributes = {name: value for (_, name), value in token.get("data", {}).items()}
    return attributes.get("type", "").strip().lower() == "checkbox" and "disabled" in attributes


class _Everything:
    """A container that holds everything: for the permissive side of a comparison."""

    def __contains__(self, item: object) -> bool:
        return True


class _Permissive(bleach.Cleaner):
    """Keeps every known tag and every attribute, URL and CSS declaration as given; escapes
    unknown tags. Serialises as the strict cleaners do, so the two agree exactly when the
    strict one removed nothing."""

    def clean(self, text: str) -> str:
        kept = BleachSanitizerFilter(
            source=self.walker(self.parser.parseFragment(text)), allowed_tags=self.tags,
            attributes=self.attributes, strip_disallowed_tags=False, strip_html_comments=True,
            css_sanitizer=self.css_sanitizer, allowed_protocols=frozenset(), attr_val_is_uri=frozenset(),
            svg_attr_val_allows_ref=frozenset(), svg_allow_local_href=frozenset())
        return self.serializer.render(kept)


def _cleaners(tags: frozenset[str], attributes, css: CSSSanitizer,
              table_styles: bool) -> tuple[bleach.Cleaner, bleach.Cleaner]:
    """(first pass, final pass): the first lets the dropped elements through to the filter
    that removes them with their content; the final pass, without them (but for pandas'
    table styles the first kept), guarantees none is left."""
    protocols = LINK_PROTOCOLS | {"data"}
    first = bleach.Cleaner(tags=tags | DROPPED_WITH_CONTENT, attributes=attributes, protocols=protocols,
                           strip=True, strip_comments=True, css_sanitizer=css,
                           filters=[_KeepTableStyles if table_styles else _DropWithContent])
    final = bleach.Cleaner(tags=tags | ({"style"} if table_styles else set()), attributes=attributes,
                           protocols=protocols, strip=True, strip_comments=True, css_sanitizer=css)
    return first, final


_HTML_FIRST, _HTML_FINAL = _cleaners(HTML_TAGS_ALLOWED, _html_attribute,
                                     CSSSanitizer(allowed_css_properties=CSS_PROPERTIES_ALLOWED), True)
_SVG_FIRST, _SVG_FINAL = _cleaners(
    SVG_TAGS_ALLOWED, _svg_attribute,
    CSSSanitizer(allowed_css_properties=CSS_PROPERTIES_ALLOWED, allowed_svg_properties=ALLOWED_SVG_PROPERTIES),
    False)
#: Keeps every known tag, attribute, scheme and CSS property, escapes unknown tags;
#: equal to the strict result only where the strict cleaner removed nothing.
_PERMISSIVE = _Permissive(
    tags=frozenset(HTML_TAGS) | HTML_TAGS_ALLOWED | SVG_TAGS_ALLOWED, attributes=lambda *_: True,
    strip=False, strip_comments=True,
    css_sanitizer=CSSSanitizer(allowed_css_properties=_Everything(), allowed_svg_properties=_Everything()))


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):  # nbformat's multi-line strings, if not joined yet
        return "".join(str(v) for v in value)
    return str(value)


# ------------------------------------------------------------ cost bounds --
#
# bleach parses with html5lib, whose time and memory grow faster than the input
# on some markup: deep nesting, big tables, and formatting elements left open,
# which it reopens after every later tag (a few kilobytes of ``<b id=N>`` become
# a million elements and minutes of work). Markup is measured before it is
# parsed, and what is too big or too tangled to check is not shown as HTML.

#: At most this many ``<`` in one fragment (pandas' default table view has under 3,000).
MAX_TAGS = 5_000
#: At most this many characters in one fragment.
MAX_CHARS = 1_000_000
#: Formatting start tags (those html5lib reopens) times ``<``: a bound on the elements it may make.
MAX_REOPENED = 10_000
#: Per notebook, all parses together (a fragment is parsed two or three times).
MAX_TAGS_PER_NOTEBOOK = 100_000
MAX_CHARS_PER_NOTEBOOK = 10_000_000
_FORMATTING_TAG = re.compile(r"<(?:a|b|big|code|em|font|i|nobr|s|small|strike|strong|tt|u)(?:[\t\n\f\r />]|$)",
                             re.IGNORECASE)
TOO_COSTLY_NOTE = "[{what} removed: too large or too deeply tangled to check ({size})]"


def _too_costly(text: str, formatting_in: str | None = None) -> str | None:
    """Why ``text`` is not parsed as HTML (its size), or None when it may be.

    ``formatting_in``: where formatting tags may be left open, when not all of
    ``text`` (markdown's rendering closes every tag it writes itself).
    """
    tags = text.count("<")
    if len(text) > MAX_CHARS or tags > MAX_TAGS:
        return f"{len(text):,} characters, {tags:,} tags"
    formatting = len(_FORMATTING_TAG.findall(text if formatting_in is None else formatting_in))
    if formatting * tags > MAX_REOPENED:
        return f"{formatting:,} formatting tags among {tags:,}"
    return None


class _Budget:
    """What one notebook may still have parsed, all its fragments and passes together."""

    def __init__(self) -> None:
        self.tags, self.chars = MAX_TAGS_PER_NOTEBOOK, MAX_CHARS_PER_NOTEBOOK

    def spend(self, text: str, passes: int) -> bool:
        tags, chars = text.count("<") * passes, len(text) * passes
        if tags > self.tags or chars > self.chars:
            return False
        self.tags, self.chars = self.tags - tags, self.chars - chars
        return True


def _why_not(text: str, budget: _Budget | None, passes: int, formatting_in: str | None = None) -> str | None:
    """Why ``text`` is not to be parsed ``passes`` times (None: it may be, and that is paid for)."""
    why = _too_costly(text, formatting_in)
    if why is None and budget is not None and not budget.spend(text, passes):
        why = "this notebook's allowance of HTML to check is used up"
    return why


def sanitize_html(fragment: Any) -> str:
    """An HTML fragment with nothing left that runs code or leaves its box.

    Scripts, style sheets, frames, forms, embeds and templates are removed with
    their content; event handlers, ``javascript:``/``data:`` links, ids, unknown
    attributes and CSS properties outside :data:`CSS_PROPERTIES_ALLOWED` are
    dropped; tables, images (also ``data:`` ones), lists, headings and inline
    styles such as colours stay. The result is bleach's re-serialisation, never
    the input as given. A fragment too big or tangled to parse in bounded time
    becomes a one-line note.
    """
    text = _text(fragment)
    why = _too_costly(text)
    if why:
        return f"<pre>{html.escape(TOO_COSTLY_NOTE.format(what='HTML', size=why))}</pre>"
    return _HTML_FINAL.clean(_HTML_FIRST.clean(text))


def sanitize_svg(svg: Any) -> str:
    """An SVG drawing without scripts, event handlers, foreign objects or outside references
    (an empty drawing where it is too big or tangled to parse in bounded time)."""
    text = _text(svg)
    if "<svg" in text:  # the XML prolog and doctype before the drawing are not HTML
        text = text[text.index("<svg"):]
    if _too_costly(text):
        return '<svg xmlns="http://www.w3.org/2000/svg"></svg>'
    return _SVG_FINAL.clean(_SVG_FIRST.clean(text))


def html_is_inert(fragment: Any, formatting_in: str | None = None) -> bool:
    """True when :func:`sanitize_html` would remove nothing from ``fragment`` (False when it is
    too big or tangled to tell)."""
    text = _text(fragment)
    if _too_costly(text, formatting_in):
        return False
    return _HTML_FINAL.clean(_HTML_FIRST.clean(text)) == _PERMISSIVE.clean(text)


def clean_html(element: Any) -> str:
    """nbconvert's ``clean_html`` filter, with this module's allowlist.

    nbconvert's own keeps few tags and escapes the rest, so an honest pandas
    table would show its ``<thead>`` as text once an exporter sanitises.
    Configured as ``HTMLExporter.filters = {"clean_html": ...}``.
    """
    return sanitize_html(element)


# ---------------------------------------------------------------- markdown --

MARKDOWN_NOTE = "*(HTML in this cell that could run code in a browser was removed when it was graded.)*"
MARKDOWN_AS_TEXT_NOTE = ("*(This cell was not safe to show as HTML: it could run code in a browser or "
                         "take the place of the grading page's fields. Its text follows, unrendered.)*")


def _render_markdown(source: str, attachments: dict | None) -> tuple[str, list[str]]:
    """``source`` as nbconvert's HTML exporters render a markdown cell, and its raw HTML pieces."""
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

    raw: list[str] = []

    class Recorder(IPythonRenderer):
        def block_html(self, text: str) -> str:
            raw.append(text)
            return super().block_html(text)

        def inline_html(self, text: str) -> str:
            raw.append(text)
            return super().inline_html(text)

    renderer = Recorder(escape=False, attachments=dict(attachments or {}))
    return MarkdownWithMath(renderer=renderer).render(source), raw


#: Longest markdown rendered to be checked (a written answer is a few kilobytes).
MAX_MARKDOWN_CHARS = 200_000


def _check_markdown(source: str, attachments: dict | None, budget: _Budget | None) -> tuple[bool, list[str]]:
    """(whether nbconvert's rendering of ``source`` is inert, the raw HTML pieces in it)."""
    if len(source) > MAX_MARKDOWN_CHARS:
        return False, []
    try:
        rendered, pieces = _render_markdown(source, attachments)
    except Exception:  # e.g. a missing attachment: formgrader could not render it either
        return False, []
    # Only the raw HTML can leave formatting tags open: the renderer closes every tag it writes.
    raw = "".join(pieces)
    if _why_not(rendered, budget, 3, formatting_in=raw):  # html_is_inert parses three times
        return False, pieces
    return html_is_inert(rendered, formatting_in=raw), pieces


def markdown_is_inert(source: str, attachments: dict | None = None) -> bool:
    """True when the HTML nbconvert renders from ``source`` holds nothing :func:`sanitize_html` removes."""
    return _check_markdown(_text(source), attachments, None)[0]


def _as_text(source: str) -> str:
    run = longest = 0
    for char in source:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return f"{MARKDOWN_AS_TEXT_NOTE}\n\n{fence}\n{source}\n{fence}\n"


def sanitize_markdown(source: Any, attachments: dict | None = None, budget: _Budget | None = None) -> str:
    """Markdown that renders inert in nbconvert (feedback, formgrader).

    Kept byte for byte when its rendering is inert already (every honest cell
    we know of); else each raw HTML piece is cleaned with :func:`sanitize_html`
    and a note says so; if the rendering is still not inert (a ``javascript:``
    link in markdown syntax, a missing attachment) or too big to check, the
    source is shown as text in a code block.
    """
    source = _text(source)
    inert, pieces = _check_markdown(source, attachments, budget)
    if inert:
        return source
    if pieces and not _why_not("".join(set(pieces)), budget, 2):
        cleaned = source
        for piece in sorted(set(pieces), key=len, reverse=True):
            piece = piece if piece in cleaned else piece.rstrip("\n")  # a block's last line may lack one
            cleaned = cleaned.replace(piece, sanitize_html(piece))
        cleaned = f"{MARKDOWN_NOTE}\n\n{cleaned}"
        if _check_markdown(cleaned, attachments, budget)[0]:
            return cleaned
    return _as_text(source)


# ----------------------------------------------------------------- outputs --

#: Output types a notebook may hold (nbformat 4).
_OUTPUT_TYPES = frozenset({"stream", "display_data", "execute_result", "error"})
#: Output data kept as they are: shown as text, as an image, or escaped by the templates.
SAFE_MIME_TYPES = frozenset({"text/plain", "text/latex", "image/png", "image/jpeg", "image/gif",
                             "application/json"})
#: The image metadata nbconvert's templates and JupyterLab read, each with the values it may take
#: (a width is written into an unquoted attribute: a string there could add an event handler).
_IMAGE_METADATA = {
    "width": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "height": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "unconfined": lambda v: isinstance(v, bool),
    "alt": lambda v: isinstance(v, str),
    "needs_background": lambda v: v in ("light", "dark"),
}
REMOVED_NOTE = "[{mime} output removed: it could run code in the browser of whoever reads this notebook]"


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _image_metadata(meta: Any) -> dict:
    """Width and height as numbers, alt text, two flags: the only image metadata templates read."""
    if not isinstance(meta, dict):
        return {}
    return {key: value for key, value in meta.items() if key in _IMAGE_METADATA and _IMAGE_METADATA[key](value)}


def _inert_data(data: Any, metadata: Any, budget: _Budget) -> tuple[dict, dict]:
    data = data if isinstance(data, dict) else {}
    metadata = metadata if isinstance(metadata, dict) else {}
    kept: dict[str, Any] = {}
    notes: list[str] = []
    for mime, value in data.items():
        if mime in SAFE_MIME_TYPES:
            kept[mime] = value if mime == "application/json" else _text(value)
        elif mime in ("text/html", "image/svg+xml"):
            text = _text(value)
            why = _why_not(text, budget, 2)  # sanitize_* parse twice
            if why:
                notes.append(TOO_COSTLY_NOTE.format(what=f"{mime} output", size=why))
            else:
                kept[mime] = sanitize_html(text) if mime == "text/html" else sanitize_svg(text)
        elif mime == "text/markdown":
            kept[mime] = sanitize_markdown(value, budget=budget)
        else:
            notes.append(REMOVED_NOTE.format(mime=for_terminal(mime)))
    if notes:
        plain = kept.get("text/plain", "")
        kept["text/plain"] = "\n".join([plain, *sorted(notes)] if plain else sorted(notes))
    meta = {m: _image_metadata(metadata[m]) for m in ("image/png", "image/jpeg", "image/gif", "image/svg+xml")
            if m in kept and m in metadata}
    meta = {m: v for m, v in meta.items() if v}
    if metadata.get("needs_background") in ("light", "dark"):
        meta["needs_background"] = metadata["needs_background"]
    return kept, meta


def inert_output(output: Any, budget: _Budget | None = None) -> NotebookNode:
    """One output rebuilt from the keys nbformat allows its type, with nothing that runs code."""
    output = output if isinstance(output, dict) else {}
    budget = budget if budget is not None else _Budget()
    kind = output.get("output_type")
    if kind not in _OUTPUT_TYPES:
        return NotebookNode(output_type="stream", name="stdout",
                            text=f"[an output of unknown type {for_terminal(kind)!s} was removed]\n")
    if kind == "stream":
        name = output.get("name") if output.get("name") in ("stdout", "stderr") else "stdout"
        return NotebookNode(output_type=kind, name=name, text=_text(output.get("text", "")))
    if kind == "error":
        traceback = output.get("traceback")
        traceback = [_text(line) for line in traceback] if isinstance(traceback, list) else []
        return NotebookNode(output_type=kind, ename=_text(output.get("ename", "")),
                            evalue=_text(output.get("evalue", "")), traceback=traceback)
    data, metadata = _inert_data(output.get("data"), output.get("metadata"), budget)
    node = NotebookNode(output_type=kind, data=NotebookNode(data), metadata=NotebookNode(metadata))
    if kind == "execute_result":
        node.execution_count = _count(output.get("execution_count"))
    return node


def formgrader_ids(nb: NotebookNode) -> frozenset[str]:
    """The element ids formgrader's grading page gives its fields for this notebook's cells."""
    ids = set()
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        grade_id = meta.get("grade_id") if isinstance(meta, dict) else None
        if isinstance(grade_id, str):
            ids |= {grade_id, f"{grade_id}-comment", f"{grade_id}_extra_credit"}
    return frozenset(ids)


def _raw_is_html(cell: NotebookNode) -> bool:
    """nbconvert's HTML exporter writes a raw cell out as HTML when its format is empty or text/html."""
    fmt = cell.get("metadata", {}).get("raw_mimetype", cell.get("metadata", {}).get("format", ""))
    return not isinstance(fmt, str) or fmt.strip() == "" or "html" in fmt.lower()


class InertNotebook(Preprocessor):
    """Autograde preprocessor: nothing a submission wrote runs in the browser of whoever reads it.

    Runs after the student's code and before nbgrader saves the graded
    notebook, which formgrader renders and feedback is made from. Outputs keep
    their type and order (a cell's verdict, decided by its error outputs, does
    not change) and hold only what nbformat allows: HTML and SVG cleaned,
    markdown made inert, JavaScript, widget views and other mime types
    dropped with a plain-text note, image metadata reduced to numbers, and
    execution counts to integers. Markdown and raw HTML cells are cleaned too,
    and the notebook's widget state (which would load a widget renderer) goes.
    """

    enabled = Bool(True, help="nbconvert preprocessors are off unless enabled").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        nb.metadata.pop("widgets", None)
        self._budget = _Budget()
        token = _RESERVED_IDS.set(formgrader_ids(nb))
        try:
            return super().preprocess(nb, resources)
        finally:
            _RESERVED_IDS.reset(token)

    def preprocess_cell(self, cell: NotebookNode, resources: dict, index: int) -> tuple[NotebookNode, dict]:
        budget = getattr(self, "_budget", None) or _Budget()
        if cell.cell_type == "code":
            cell.execution_count = _count(cell.get("execution_count"))
            outputs = cell.get("outputs")
            cell.outputs = [inert_output(out, budget) for out in outputs] if isinstance(outputs, list) else []
        elif cell.cell_type == "markdown":
            attachments = cell.get("attachments") if isinstance(cell.get("attachments"), dict) else None
            cell.source = sanitize_markdown(cell.source, attachments, budget)
        elif cell.cell_type == "raw":
            metadata = cell.setdefault("metadata", NotebookNode())
            if not isinstance(metadata.get("raw_mimetype", ""), str):
                metadata.pop("raw_mimetype")
            if _raw_is_html(cell):
                source = _text(cell.source)
                cell.source = html.escape(source) if _why_not(source, budget, 2) else sanitize_html(source)
        return cell, resources
