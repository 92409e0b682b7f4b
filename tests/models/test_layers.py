"""`bassi.models` imports only the pure layer and itself; SDKs only inside functions."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import bassi.models

PACKAGE = Path(bassi.models.__file__).parent
PURE = {"bassi.errors", "bassi.messages", "bassi.events", "bassi.settings", "bassi.session"}
THIRD_PARTY_AT_TOP = {"pydantic"}
LAZY_ONLY = {"anthropic", "openai", "httpx2", "httpx"}


def _imports(tree: ast.AST) -> list[tuple[str, bool]]:
    """(module, at module level) for every import in the file."""
    found: list[tuple[str, bool]] = []
    top = {id(node) for node in getattr(tree, "body", [])}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, id(node) in top))
    return found


def test_models_import_only_the_pure_layer_and_themselves() -> None:
    for path in sorted(PACKAGE.glob("*.py")):
        for module, _ in _imports(ast.parse(path.read_text())):
            if module == "bassi" or module.startswith("bassi."):
                assert module in PURE or module.startswith("bassi.models"), (
                    f"{path.name} imports {module}"
                )


def test_sdks_are_imported_lazily() -> None:
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text())
        type_checking = {
            id(n)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)
        }
        for node in tree.body:
            if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in type_checking:
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                )
                for name in names:
                    root = name.split(".")[0]
                    assert root not in LAZY_ONLY, f"{path.name} imports {name} at module level"
                    assert root in sys.stdlib_module_names or root in {
                        "bassi",
                        "__future__",
                        *THIRD_PARTY_AT_TOP,
                    }, f"{path.name} imports {name}"
