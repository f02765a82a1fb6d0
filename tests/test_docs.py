"""The documentation says what the code does: docs/configuration.md is what its generator
writes from the settings, every setting is on it, every relative link in the README and
docs/ resolves, every parameter table in docs/kinds.md matches the kinds' schemas, and
docs/development.md lists every test file."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from atelier.shared.kinds import KINDS
from atelier.shared.settings import Settings, env_name

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [
    ROOT / "README.md",
    *sorted(DOCS.glob("*.md")),
    *sorted((ROOT / "bench" / "results").glob("*.md")),
]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
REQUIRED = object()
"""A documented default of "—": the parameter must be given."""


def generator() -> ModuleType:
    """docs/gen_configuration.py, which is a script rather than a package module."""
    spec = importlib.util.spec_from_file_location(
        "gen_configuration", DOCS / "gen_configuration.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


def test_configuration_page_is_what_the_generator_writes() -> None:
    page = generator().render()
    assert (DOCS / "configuration.md").read_text() == page, "run ./dev docs"


def test_every_setting_is_on_the_configuration_page() -> None:
    page = (DOCS / "configuration.md").read_text()
    names = [env_name(name) for name in Settings.model_fields]
    missing = [name for name in names if f"`{name}`" not in page]
    assert missing == []


def _outside_code(text: str) -> list[str]:
    """The lines of a Markdown page that are not inside a fenced code block."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def _anchors(page: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces as hyphens, repeats
    numbered."""
    seen: dict[str, int] = {}
    anchors = set()
    for line in _outside_code(page.read_text()):
        match = re.match(r"#{1,6} (.+)", line)
        if not match:
            continue
        slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def test_every_relative_link_resolves() -> None:
    broken = []
    for page in PAGES:
        for line in _outside_code(page.read_text()):
            for target in LINK.findall(line):
                if re.match(r"[a-z]+:", target):
                    continue
                path, _, anchor = target.partition("#")
                linked = (page.parent / path).resolve() if path else page
                if not linked.exists():
                    broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
                elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
                    broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert broken == []


def _value(text: str) -> Any:
    """A documented default: JSON, `none`, a bare word, or "—" (required); a trailing
    "(...)" explains it."""
    text = re.sub(r"\s*\(.*\)$", "", text.strip()).strip("`")
    if text == "—":
        return REQUIRED
    if text == "none":
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def documented_params() -> list[tuple[str, str, str, str]]:
    """(kind, "train" or "generate", name, default cell) of each row of docs/kinds.md's
    parameter tables; a row naming several parameters has one default each."""
    rows, kind, table = [], "", ""
    for line in _outside_code((DOCS / "kinds.md").read_text()):
        heading = re.match(r"## `(\w+)`", line)
        if heading:
            kind = heading.group(1)
        header = re.match(r"\| (Train|Generate) param \|", line)
        if header:
            table = header.group(1).lower()
            continue
        if not line.startswith("|"):
            table = ""
        if not (table and line.startswith("| `")):
            continue
        names_cell, default_cell = (cell.strip() for cell in line.strip("|").split("|")[:2])
        names = re.findall(r"`(\w+)`", names_cell)
        defaults = re.split(r",\s+(?![^(]*\))", default_cell)
        assert len(names) == len(defaults), f"{kind} {table}: {line}"
        rows += [
            (kind, table, name, default) for name, default in zip(names, defaults, strict=True)
        ]
    return rows


@pytest.mark.parametrize("kind", ["dcgan", "textgen", "melody"])
def test_documented_parameters_and_defaults_are_the_schemas(kind: str) -> None:
    spec = KINDS[kind]
    models = {"train": spec.train_params, "generate": spec.generate_params}
    rows = [row for row in documented_params() if row[0] == kind]
    wrong = []
    for _, table, name, cell in rows:
        field = models[table].model_fields.get(name)
        if field is None:
            wrong.append(f"{table} {name}: no such parameter")
            continue
        documented = _value(cell)
        if documented is REQUIRED:
            if not field.is_required():
                wrong.append(f"{table} {name}: documented as required, has a default")
            continue
        default = field.get_default(call_default_factory=True)
        default = list(default) if isinstance(default, tuple) else default
        same_type = isinstance(documented, bool) == isinstance(default, bool)
        if field.is_required() or documented != default or not same_type:
            wrong.append(f"{table} {name}: documented {cell}, schema {default!r}")
    for table, model in models.items():
        listed = {name for _, t, name, _ in rows if t == table}
        wrong += [
            f"{table} {name}: not documented" for name in model.model_fields if name not in listed
        ]
    assert wrong == []


def test_the_parameter_check_reads_the_tables() -> None:
    """A table the check cannot read would pass it silently."""
    counted = {(kind, table) for kind, table, _, _ in documented_params()}
    assert counted == {
        (k, t) for k in ("dcgan", "textgen", "melody") for t in ("train", "generate")
    }
    assert _value("0.25") == 0.25 and _value("`bce`") == "bce" and _value("none (all)") is None
    assert _value("`[]`") == [] and _value('`"The "`') == "The " and _value("—") is REQUIRED


def test_development_page_lists_every_test_file() -> None:
    page = (DOCS / "development.md").read_text()
    listed = set(re.findall(r"^- `(test_\w+\.py)`", page, flags=re.M))
    on_disk = {path.name for path in (ROOT / "tests").glob("test_*.py")}
    assert sorted(on_disk - listed) == []
