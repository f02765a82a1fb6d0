"""Write docs/configuration.md from the settings themselves: each field of
``shared/settings.py``'s ``Settings``, with its type, its default and the docstring under
it, grouped by the ``# --- section ---`` comments of the class.

    python docs/gen_configuration.py           # rewrite docs/configuration.md (./dev docs)
    python docs/gen_configuration.py --check   # exit 1 if it is not what this writes

The names, sections and docstrings are read from the source with ``ast`` (comments are not
in the tree, so sections come from the source lines); types and defaults from the
model's fields, so a default such as ``50 << 30`` is shown as the number it is.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from atelier.shared.settings import Settings
from atelier.shared.settings_env import env_name, format_value

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "shared" / "settings.py"
TARGET = ROOT / "docs" / "configuration.md"
SECTION = re.compile(r"^\s*# --- (.+?) -*\s*$")

INTRO = """\
# Configuration

<!-- Written by docs/gen_configuration.py from shared/settings.py (./dev docs); edit the
docstrings there, not this file. tests/test_docs.py fails when the two differ. -->

One settings object (`shared/settings.py`) reads every `ATELIER_*` variable once, when a
process starts; nothing else reads the environment. Each variable is the field's name in
capitals: `redis_url` is `ATELIER_REDIS_URL`. `atelier up` sets the service ones (Redis
URL, storage directory, API URL, metrics) for the processes it starts.

A value is checked against its field's type when it is read, and a wrong one stops the
process with a message naming the variable and what it accepts. Switches take `1`/`0`,
`true`/`false`, `yes`/`no` or `on`/`off`; choices ignore case.
"""

UNITS = ((1 << 30, "GiB"), (1 << 20, "MiB"))
DURATIONS = ((86_400, "day"), (3_600, "h"))


@dataclass(frozen=True)
class Documented:
    """One field as the page shows it."""

    section: str
    name: str
    kind: str
    default: str
    doc: str


def _markdown(text: str) -> str:
    """A docstring as one table cell: one line, ``code`` as `code`, pipes escaped."""
    return " ".join(text.split()).replace("``", "`").replace("|", "\\|")


def _kind(annotation: Any) -> str:
    if get_origin(annotation) is Literal:
        return " \\| ".join(f"`{choice}`" for choice in get_args(annotation))
    names = {bool: "switch", int: "integer", float: "number", str: "text", Path: "path"}
    return names[annotation]


def _default(name: str, value: Any) -> str:
    """The default as it would be written in the environment, with a reading for sizes
    and long durations."""
    if value == "":
        return "(empty)"
    shown = f"`{format_value(value)}`"
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return shown
    readings = UNITS if name.endswith("_bytes") else DURATIONS
    if name.endswith(("_bytes", "_seconds")):
        for size, unit in readings:
            if value >= size and value % size == 0:
                count = value // size
                plural = "s" if unit == "day" and count != 1 else ""
                return f"{shown} ({count:g} {unit}{plural})"
    return shown


def _sections(lines: list[str]) -> list[tuple[int, str]]:
    """(line number, title) of each ``# --- title ---`` comment, in order."""
    found = []
    for number, line in enumerate(lines, start=1):
        match = SECTION.match(line)
        if match:
            title = _markdown(match.group(1))
            found.append((number, title[:1].upper() + title[1:]))
    return found


def _docstrings(tree: ast.Module) -> list[tuple[int, str, str | None]]:
    """(line, field name, docstring or None) for each field of ``Settings``."""
    settings = next(
        node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Settings"
    )
    found: list[tuple[int, str, str | None]] = []
    body = settings.body
    for index, node in enumerate(body):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        following = body[index + 1] if index + 1 < len(body) else None
        doc = None
        if (
            isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            doc = following.value.value
        found.append((node.lineno, node.target.id, doc))
    return found


def documented() -> list[Documented]:
    """Every field, in source order; a field without a docstring is an error."""
    source = SOURCE.read_text()
    sections = _sections(source.splitlines())
    fields = Settings.model_fields
    rows = []
    for line, name, doc in _docstrings(ast.parse(source)):
        if doc is None:
            raise ValueError(f"Settings.{name} ({SOURCE}:{line}) has no docstring")
        section = [title for number, title in sections if number < line][-1]
        rows.append(
            Documented(
                section,
                name,
                _kind(fields[name].annotation),
                _default(name, fields[name].default),
                _markdown(doc),
            )
        )
    return rows


def render() -> str:
    """The whole page."""
    parts = [INTRO]
    section = None
    for row in documented():
        if row.section != section:
            section = row.section
            parts.append(f"\n## {section}\n\n| Variable | Type | Default | Meaning |\n")
            parts.append("|---|---|---|---|\n")
        parts.append(f"| `{env_name(row.name)}` | {row.kind} | {row.default} | {row.doc} |\n")
    return "".join(parts)


def main(argv: list[str]) -> int:
    page = render()
    if "--check" in argv:
        if TARGET.read_text() != page:
            print(f"{TARGET} is out of date: run ./dev docs", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(page)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
