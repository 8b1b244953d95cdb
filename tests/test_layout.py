"""The package's shape: imports run down the layers, modules stay small, the generated tree
is whole folders, and what users read imports only public names."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import guard_core

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "guard_core"
#: About 400 lines: a module past this is split by what it holds.
MAX_LINES = 410

#: Bottom-up rank of each part of `guard_core`: a module imports only its rank or below.
RANKS = {
    "exceptions": 0,
    "version": 0,
    "testing": 0,
    "_shared": 1,
    "_shared.connection": 1.1,
    "_shared.storage": 1.2,
    "_shared.policy": 1.3,
    "models": 2,
    "metrics": 2,
    "connection": 3,
    "storage": 4,
    "handlers": 5,
    "guard": 6,
    "request_check": 7,
    "": 8,  # guard_core/__init__.py: the public API
    "adapters": 9,  # users of the public API
    "cli": 9,
}


def _rank(module: str) -> float:
    parts = module.split(".")[1:]
    for size in (2, 1, 0):
        if len(parts) >= size and ".".join(parts[:size]) in RANKS:
            return RANKS[".".join(parts[:size])]
    raise AssertionError(f"no rank for {module}")


def _module_of(path: Path) -> tuple[str, str]:
    """The module's dotted name and the package its relative imports start from."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        name = ".".join(parts[:-1])
        return name, name
    name = ".".join(parts)
    return name, name.rpartition(".")[0]


def _imports(path: Path, package: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                found.append(".".join([*base, node.module] if node.module else base))
            elif node.module:
                found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
    return [name for name in found if name == "guard_core" or name.startswith("guard_core.")]


def test_every_import_runs_down_the_layers() -> None:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name, package = _module_of(path)
        own = _rank(name)
        for target in _imports(path, package):
            if _rank(target) > own:
                upward.append(f"{name} imports {target}")
    assert upward == []


def test_the_ranks_see_a_planted_upward_import(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text("from guard_core.handlers.ipban_handler import IPBanManager\n")
    (target,) = _imports(planted, "guard_core._shared.storage")
    assert _rank(target) > _rank("guard_core._shared.storage.journal")


def test_no_module_is_past_about_400_lines() -> None:
    long = {
        path.relative_to(ROOT).as_posix(): count
        for path in PACKAGE.rglob("*.py")
        if (count := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_the_generated_tree_is_whole_folders_and_top_level_files() -> None:
    spec = importlib.util.spec_from_file_location("unasync", ROOT / "scripts" / "unasync.py")
    assert spec is not None and spec.loader is not None
    unasync = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(unasync)
    (face,) = [paths for source, _, paths in unasync.TREES if source == "guard_core"]
    assert sorted(face) == sorted(
        [
            "__init__.py",
            "py.typed",
            "guard.py",
            "request_check.py",
            "connection",
            "handlers",
            "storage",
        ]
    )
    for folder in ("connection", "handlers", "storage"):
        generated = {p.name for p in (ROOT / "guard_core_sync" / folder).glob("*.py")}
        assert generated == {p.name for p in (PACKAGE / folder).glob("*.py")}
    # the shared tree and the hand-written surfaces are never copied into the sync face
    for name in ("_shared", "adapters", "cli", "models.py", "exceptions.py", "testing.py"):
        assert not (ROOT / "guard_core_sync" / name).exists(), name


_IMPORT = re.compile(
    r"^\s*from (guard_core(?:_sync)?[\w.]*) import (?:\(([\w,\s]+)\)|([\w, ]+))", re.M
)


def _user_facing_imports() -> list[tuple[str, str, str]]:
    texts = {p: p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]}
    texts |= {p: p.read_text() for p in sorted((ROOT / "examples").glob("*.py"))}
    found = []
    for path, text in texts.items():
        for module, grouped, names in _IMPORT.findall(text):
            for name in re.split(r"[,\s]+", (grouped or names).strip()):
                if name:
                    found.append((path.relative_to(ROOT).as_posix(), module, name))
    return found


def test_readme_docs_and_examples_import_only_public_names() -> None:
    found = _user_facing_imports()
    assert len(found) >= 10  # the README's own snippets are among them
    private = [
        f"{where}: from {module} import {name}"
        for where, module, name in found
        if any(part.startswith("_") for part in module.split("."))
        or name.startswith("_")
        or (module in ("guard_core", "guard_core_sync") and name not in guard_core.__all__)
    ]
    assert private == []
