"""How a docstring written for code readers is shown on the course site (a Griffe extension, see mkdocs.yml).

Docstrings here are Markdown written to read well in an editor, and three habits of that style render badly:
- a list right under its paragraph line: Markdown needs a blank line before it, or the items run inline;
- the paragraph after a list, directly under its last item: Markdown would fold it into that item;
- the "Course page: `docs/...` (`make docs` builds the site)" line, a pointer for someone reading the code, which
  on the course page itself only points at itself.
`for_readers` fixes the first two and drops the third when the site is built; the source stays as written. The
lesson modules' paragraphs open with a short lead-in ("What it does.", "When it helps."), set in bold on the page.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

LIST_ITEM = re.compile(r"(?:-|\d+\.) ")
FENCE = re.compile(r"\s*(```|~~~)")
COURSE_PAGE = re.compile(r"Course page: `docs/[^`]+`")
# A paragraph's lead-in: a few words closed by "." or ":" ("What it costs, and the traps.", "Run it:").
LEAD_IN = re.compile(r"(?P<lead>[A-Z][A-Za-z ,'-]{2,40}[.:])(?=\s)")


def spaced_lists(text: str) -> str:
    """A blank line before a list that follows a paragraph line, and after it when a paragraph line follows."""
    out: list[str] = []
    in_list = in_fence = in_code_span = False
    for line in text.split("\n"):
        if FENCE.match(line):
            in_fence, in_code_span = not in_fence, False
        # a "- " opening a line inside a `code span` wrapped over two lines is text, not an item
        is_item = not in_fence and not in_code_span and bool(LIST_ITEM.match(line))
        continues_item = in_list and line.startswith((" ", "\t")) and bool(line.strip())
        starts_list = is_item and not in_list
        ends_list = in_list and bool(line.strip()) and not is_item and not continues_item
        if out and out[-1].strip() and not in_fence and (starts_list or ends_list):
            out.append("")
        in_list = is_item or continues_item
        if not in_fence and not FENCE.match(line):
            in_code_span = bool(line.strip()) and in_code_span != (line.count("`") % 2 == 1)
        out.append(line)
    return "\n".join(out)


def without_course_page(text: str) -> str:
    """The docstring without its "Course page: ..." paragraph."""
    paragraphs = text.split("\n\n")
    return "\n\n".join(paragraph for paragraph in paragraphs if not COURSE_PAGE.match(paragraph.strip()))


def bold_lead_ins(text: str) -> str:
    """`What it does. ...` -> `**What it does.** ...` at the start of a paragraph (six words at most)."""

    def bold(paragraph: str) -> str:
        match = LEAD_IN.match(paragraph)
        if not match or len(match["lead"].split()) > 6:
            return paragraph
        return f"**{match['lead']}**{paragraph[match.end() :]}"

    first, *rest = text.split("\n\n")
    return "\n\n".join([first, *(bold(paragraph) for paragraph in rest)])


def for_readers(text: str, lesson: bool = False) -> str:
    """A docstring as the site shows it; `lesson` also bolds the paragraphs' lead-ins (lesson modules only)."""
    shown = spaced_lists(without_course_page(text))
    return bold_lead_ins(shown) if lesson else shown


class CourseDocstrings(griffe.Extension):
    """Rewrites each docstring mkdocstrings renders with `for_readers` (flows' module docstrings are lessons)."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            lesson = obj.is_module and obj.path.startswith("flows.")
            obj.docstring.value = for_readers(obj.docstring.value, lesson=lesson)
