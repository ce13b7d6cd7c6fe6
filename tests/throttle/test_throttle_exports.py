"""Every throttle module declares __all__, and the package re-exports exactly their union."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import sys
from pathlib import Path

import jabberemu.throttle as throttle


def test_modules_declare_all_and_the_package_reexports_them() -> None:
    union: set[str] = set()
    for info in pkgutil.iter_modules(throttle.__path__):
        module = importlib.import_module(f"jabberemu.throttle.{info.name}")
        assert isinstance(getattr(module, "__all__", None), list), info.name
        for name in module.__all__:
            assert hasattr(module, name), f"{info.name}.{name}"
            assert getattr(throttle, name) is getattr(module, name), name
        union |= set(module.__all__)
    assert set(throttle.__all__) == union


def test_pure_package() -> None:
    """No server, load-generator or wire library behind the model."""
    allowed = {"numpy", "scipy", "jabberemu", "__future__"}
    for path in Path(throttle.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                top = name.split(".")[0]
                assert top in allowed or top in sys.stdlib_module_names, f"{path.name}: {name}"
                if top == "jabberemu":
                    assert name.startswith(("jabberemu.throttle", "jabberemu.errors")), f"{path.name}: {name}"
