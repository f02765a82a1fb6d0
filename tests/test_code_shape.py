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


# --- one spelling per module ---------------------------------------------------------------------
PRODUCT = ("api", "workers", "shared", "cli")
"""The folders linked into the installed root as ``atelier.api`` and so on."""


def _product_imports() -> list[tuple[Path, ast.Import | ast.ImportFrom]]:
    found = []
    for folder in PRODUCT:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    found.append((path, node))
    return found


def _runtime_package(path: Path) -> str:
    """The package Python runs ``path`` in: ``api/views/jobs.py`` is in ``atelier.api.views``."""
    return ".".join(["atelier", *path.relative_to(ROOT).parts[:-1]])


def _file_of(module: str) -> Path | None:
    """The file of the tree that runtime module ``atelier.X.Y`` is, if it is one."""
    parts = module.split(".")[1:]
    for candidate in (
        ROOT.joinpath(*parts).with_suffix(".py"),
        ROOT.joinpath(*parts, "__init__.py"),
    ):
        if parts and candidate.is_file():
            return candidate
    return None


def _static_target(path: Path, node: ast.ImportFrom) -> Path:
    """Where a reader of the tree who knows nothing of the links follows a relative
    import: up ``level - 1`` folders from the file's own, then down the module's path."""
    base = path.parent
    for _ in range(node.level - 1):
        base = base.parent
    return base.joinpath(*(node.module or "").split(".")) if node.module else base


def test_product_code_imports_itself_relatively() -> None:
    """Inside api/, workers/, shared/ and cli/ a module reaches another as ``..shared.jobs``,
    never as ``atelier.shared.jobs``: the absolute spelling names a path (``atelier/shared``)
    that exists only as a link, so a static reading of the tree loses the edge."""
    absolute = []
    for path, node in _product_imports():
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        for name in names:
            if name.split(".")[:2] in (["atelier", folder] for folder in PRODUCT):
                absolute.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    assert len(_product_imports()) > 500, "the product folders moved?"
    assert absolute == []


def _read_file(place: Path) -> Path | None:
    return next((p for p in (place.with_suffix(".py"), place / "__init__.py") if p.is_file()), None)


def test_each_relative_import_reads_as_the_module_python_loads() -> None:
    """The file a relative import leads to when the tree is read as folders is the file
    Python loads for it inside the installed root, for every relative import there is:
    the module after ``from``, and each imported name that is a module of its own."""
    import importlib.util

    # The root's __init__.py makes api/, workers/, shared/ and cli/ siblings in one package
    # for a reader of the tree, as they are inside ``atelier`` for Python; without it such a
    # reader stops ``..shared`` at the top of api/.
    assert (ROOT / "__init__.py").is_file()
    checked, mismatched = 0, []
    for path, node in _product_imports():
        if not isinstance(node, ast.ImportFrom) or node.level == 0:
            continue
        package = _runtime_package(path)
        runtime = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
        static = _static_target(path, node)
        pairs = [(runtime, static)] + [
            (f"{runtime}.{alias.name}", static / alias.name)
            for alias in node.names
            if _file_of(f"{runtime}.{alias.name}") or _read_file(static / alias.name)
        ]
        for module, place in pairs:
            checked += 1
            loaded, read = _file_of(module), _read_file(place)
            if loaded is None or loaded != read:
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                mismatched.append(f"{where}: {module} is {loaded}, read as {read}")
    assert checked > 500
    assert mismatched == []
