"""The test suite's own layout: no test module imports another.

Importing a test module also collects its tests under a second name and ties one file's
helpers to another's fate; helpers shared between test modules live in tests/support/ or
as fixtures in conftest.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def is_test_module(dotted: str) -> bool:
    return any(part.startswith("test_") for part in dotted.split("."))


def imports_of_test_modules(tree: ast.Module) -> list[str]:
    """Every module an `import` or `from … import` names that is a test module."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if is_test_module(alias.name)]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            named = [f"{module}.{alias.name}".lstrip(".") for alias in node.names]
            found += [name for name in (module, *named) if name and is_test_module(name)][:1]
    return found


def test_no_test_module_imports_another() -> None:
    offenders = {
        path.name: imported
        for path in sorted(TESTS.rglob("*.py"))
        if (imported := imports_of_test_modules(ast.parse(path.read_text(), str(path))))
    }
    assert offenders == {}


def test_the_scan_sees_every_form_of_import() -> None:
    forms = [
        "from tests.test_desk import last_to",
        "import tests.test_desk",
        "from .test_desk import last_to",
        "from . import test_desk",
        "from tests import test_desk",
    ]
    for form in forms:
        assert imports_of_test_modules(ast.parse(form)), form
    assert imports_of_test_modules(ast.parse("from tests.support.desk import last_to\nimport pytest")) == []
