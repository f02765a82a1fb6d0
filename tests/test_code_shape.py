"""Small pieces: no module over 400 lines and no function over 50 (STYLE.md, principle 10),
in the code that ships and in the benchmarks. Tests are left to ruff's statement limit."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKED = [ROOT / name for name in ("api", "workers", "shared", "cli", "bench", "soak")]
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 50

# Known violators in code being split right now; each entry is removed with its split.
# Keys are "path" for a module, "path:function" for a function.
ALLOWED: frozenset[str] = frozenset()


def _modules() -> list[Path]:
    found = sorted(path for folder in CHECKED for path in folder.rglob("*.py"))
    return [*found, ROOT / "atelier" / "client.py"]


def _function_lengths(tree: ast.AST) -> list[tuple[str, int]]:
    """(name, lines) of every function, nested ones included; a def's node starts at the
    ``def`` line, so decorators are not counted."""
    return [
        (node.name, node.end_lineno - node.lineno + 1)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno
    ]


def test_modules_and_functions_are_small() -> None:
    modules = _modules()
    assert len(modules) > 50, "the checked folders moved?"
    too_long = []
    for path in modules:
        name = str(path.relative_to(ROOT))
        text = path.read_text()
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES and name not in ALLOWED:
            too_long.append(f"{name}: {lines} lines")
        for function, length in _function_lengths(ast.parse(text)):
            if length > MAX_FUNCTION_LINES and f"{name}:{function}" not in ALLOWED:
                too_long.append(f"{name}:{function}: {length} lines")
    assert too_long == []


def _stale(entries: frozenset[str], root: Path) -> list[str]:
    """The entries of an allow-list whose module or function is no longer too long."""
    stale = []
    for entry in sorted(entries):
        path, _, function = entry.partition(":")
        text = (root / path).read_text()
        if not function:
            if len(text.splitlines()) <= MAX_MODULE_LINES:
                stale.append(entry)
        elif all(
            length <= MAX_FUNCTION_LINES
            for name, length in _function_lengths(ast.parse(text))
            if name == function
        ):
            stale.append(entry)
    return stale


def test_the_allow_list_names_only_real_violators() -> None:
    """An entry whose code has been split must go, so the list can only shrink."""
    assert _stale(ALLOWED, ROOT) == []


def test_a_stale_entry_is_found(tmp_path: Path) -> None:
    """The check above on a list that is not empty (ours usually is): a split module, a
    split or vanished function are stale; a module or function still too long is not."""
    long_body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "big.py").write_text(f"def long():\n{long_body}" + "\n" * MAX_MODULE_LINES)
    (tmp_path / "small.py").write_text("def short():\n    return 1\n")
    entries = frozenset({"big.py", "big.py:long", "small.py", "small.py:short", "small.py:gone"})
    assert _stale(entries, tmp_path) == ["small.py", "small.py:gone", "small.py:short"]


def test_ci_lints_then_runs_the_whole_suite() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.index("./dev lint") < ci.index("./dev test")
    assert "-m" not in ci.split("./dev test", 1)[1].splitlines()[0], "CI runs every test"
    pyproject = (ROOT / "pyproject.toml").read_text()
    for rule in ("C90", "PLR0911", "PLR0912", "PLR0915", "TID"):
        assert f'"{rule}"' in pyproject
    lint = (ROOT / "dev").read_text().split("lint)", 1)[1].split(";;", 1)[0]
    assert "ruff" in lint and "mypy" in lint and "strict = true" in pyproject
