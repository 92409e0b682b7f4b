"""Must-show 5: a fresh venv holding only the built wheel runs `bassi db upgrade` and `bassi run`."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.cli.conftest import clean_env

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_wheel_alone_upgrades_a_database_and_runs_a_prompt(tmp_path: Path) -> None:
    uv = shutil.which("uv")
    assert uv is not None, "uv is needed to build the wheel"
    dist = tmp_path / "dist"
    subprocess.run(
        [uv, "build", "--wheel", "--out-dir", str(dist), str(ROOT)], check=True, capture_output=True
    )
    [wheel] = dist.glob("bassi-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "bassi/migrations/versions/0001_initial.py" in names
    assert any(n.startswith("bassi/web/static/") for n in names), "the UI ships in the wheel"
    venv = tmp_path / "venv"
    subprocess.run(
        [uv, "venv", "--python", sys.executable, str(venv)], check=True, capture_output=True
    )
    subprocess.run(
        [uv, "pip", "install", "--python", str(venv / "bin" / "python"), str(wheel)],
        check=True,
        capture_output=True,
    )
    workdir = tmp_path / "elsewhere"  # nowhere near the source checkout
    workdir.mkdir()
    env = clean_env(tmp_path / "home", PATH="/usr/bin:/bin", HOME=str(tmp_path))
    bassi = str(venv / "bin" / "bassi")
    db = str(workdir / "fresh.db")

    upgraded = subprocess.run(
        [bassi, "db", "upgrade", "--db", db], cwd=workdir, env=env, capture_output=True, text=True
    )
    assert upgraded.returncode == 0, upgraded.stderr
    assert "revision 0001" in upgraded.stdout

    ran = subprocess.run(
        [bassi, "run", "--model", "scripted", "hello", "--db", db],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "Echo #1: hello"
