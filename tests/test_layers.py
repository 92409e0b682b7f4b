"""The import arrows of DESIGN.md section 1 stay true, and importing bassi has no side effects."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "bassi"

PURE = {
    "bassi",
    "bassi.errors",
    "bassi.settings",
    "bassi.messages",
    "bassi.events",
    "bassi.session",
}
ADAPTERS = ("bassi.store", "bassi.models", "bassi.tools")
APPLICATION = {"bassi.agent", "bassi.manager"}
CONCRETE = {
    "bassi.store.log",
    "bassi.store.sqlite",
    "bassi.models.anthropic",
    "bassi.models.openai_compat",
}
COMPOSITION_ROOTS = ("bassi.web.app", "bassi.cli")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def bassi_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "bassi"}
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.level == 0
            and node.module.split(".")[0] == "bassi"
        ):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def layer(module: str) -> int:
    if module in PURE:
        return 0
    if module.startswith(ADAPTERS):
        return 1
    if module in APPLICATION:
        return 2
    return 3


def modules() -> list[tuple[str, set[str]]]:
    return [(module_name(p), bassi_imports(p)) for p in sorted(PACKAGE.rglob("*.py"))]


def known(target: str, names: set[str]) -> str | None:
    """The real module an import names (`from bassi.events import Event` names bassi.events)."""
    while target and target not in names:
        target = target.rpartition(".")[0]
    return target or None


def test_imports_point_down_the_layers() -> None:
    names = {m for m, _ in modules()}
    problems = []
    for module, imports in modules():
        for target in {known(t, names) for t in imports} - {None, module}:
            assert target is not None
            mine, theirs = layer(module), layer(target)
            if mine == 1 and theirs == 1 and target.split(".")[1] != module.split(".")[1]:
                problems.append(f"{module} -> {target} (adapters never import each other)")
            elif theirs > mine:
                problems.append(f"{module} (layer {mine}) -> {target} (layer {theirs})")
    assert not problems, "\n".join(problems)


def test_only_the_composition_roots_name_concrete_adapters() -> None:
    names = {m for m, _ in modules()}
    offenders = []
    for module, imports in modules():
        for target in {known(t, names) for t in imports} & CONCRETE:
            family = target.rsplit(".", 1)[0]
            if not module.startswith(family) and not module.startswith(COMPOSITION_ROOTS):
                offenders.append(f"{module} -> {target}")
    assert not offenders, offenders


def test_importing_bassi_creates_nothing_and_prints_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path), "BASSI_HOME": str(tmp_path / "bassi-home")}
    code = "import bassi, bassi.events, bassi.session, bassi.settings, bassi.manager, bassi.cli"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""
    assert list(tmp_path.iterdir()) == []
