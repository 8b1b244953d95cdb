"""The distribution as it would be published: its name, version, licence and wheel contents."""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import guard_core
import guard_core_sync
from guard_core.version import __version__

ROOT = Path(__file__).resolve().parent.parent
#: What a build needs from the source tree (no tests, no virtualenv, no caches).
BUILD_INPUTS = ("pyproject.toml", "README.md", "LICENSE", "guard_core", "guard_core_sync")


def _pyproject() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


def test_both_faces_report_the_one_version() -> None:
    assert guard_core.__version__ == guard_core_sync.__version__ == __version__
    assert guard_core_sync.__version__ is guard_core.__version__
    assert __version__.count(".") >= 2


def test_distribution_name_is_not_the_upstream_one() -> None:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    assert project["name"] != "guard-core"
    assert project["name"] == "guard-core-redis"
    assert project["license"] == "MIT"
    assert "cli" in project["optional-dependencies"]
    assert project["scripts"]["guard-core"] == "guard_core.cli:main"


def test_license_file_is_mit_with_the_project_copyright() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License")
    assert "Copyright (c) 2026 The guard-core-redis contributors" in text


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the sources (the work tree stays clean)."""
    source = tmp_path_factory.mktemp("source")
    for name in BUILD_INPUTS:
        origin = ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, source / name)
    out = tmp_path_factory.mktemp("wheelhouse")
    # no build isolation: the build backend comes from the dev extra, no network needed
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(out), str(source)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    (built,) = out.glob("*.whl")
    return built


def test_wheel_holds_both_faces_lua_scripts_and_typing_markers(wheel: Path) -> None:
    assert wheel.name.startswith(f"guard_core_redis-{__version__}-py3-none-any")
    names = set(zipfile.ZipFile(wheel).namelist())
    for face in ("guard_core", "guard_core_sync"):
        assert f"{face}/__init__.py" in names
        assert f"{face}/py.typed" in names
        assert f"{face}/guard.py" in names
        assert f"{face}/handlers/redis_handler.py" in names
        assert f"{face}/connection/manager.py" in names
    lua = {
        Path(p).name for p in (ROOT / "guard_core" / "_shared" / "storage" / "lua").glob("*.lua")
    }
    assert lua, "no Lua scripts in the source tree"
    assert {f"guard_core/_shared/storage/lua/{name}" for name in lua} <= names
    assert "guard_core/cli/app.py" in names
    assert "guard_core/cli/commands/ratelimit.py" in names  # the commands, one per module
    # the suite's topologies stay in the tests; the wheel ships the one throwaway server
    testing = zipfile.ZipFile(wheel).read("guard_core/testing.py").decode()
    assert "class LocalRedisServer" in testing
    assert "class LocalRedisCluster" not in testing and "class LocalRedisSentinel" not in testing
    assert not any(name.startswith(("tests/", "benchmarks/", "examples/")) for name in names)


def test_wheel_metadata_names_version_licence_and_the_cli_entry_point(wheel: Path) -> None:
    archive = zipfile.ZipFile(wheel)
    dist_info = f"guard_core_redis-{__version__}.dist-info"
    metadata = email.message_from_bytes(archive.read(f"{dist_info}/METADATA"))
    assert metadata["Name"] == "guard-core-redis"
    assert metadata["Version"] == __version__
    assert metadata["License-Expression"] == "MIT"
    assert "Typing :: Typed" in metadata.get_all("Classifier", [])
    assert metadata.get_all("Project-URL")
    assert "cli" in metadata.get_all("Provides-Extra", [])
    assert any(n.startswith(f"{dist_info}/licenses/LICENSE") for n in archive.namelist())
    entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
    assert "guard-core = guard_core.cli:main" in entry_points
