"""Every report module declares __all__ and the package re-exports what it lists."""

from __future__ import annotations

import importlib
import pkgutil

import jabberemu.report as report


def test_every_module_declares_all_and_names_exist() -> None:
    for info in pkgutil.iter_modules(report.__path__):
        module = importlib.import_module(f"jabberemu.report.{info.name}")
        assert isinstance(getattr(module, "__all__", None), list), info.name
        for name in module.__all__:
            assert hasattr(module, name), f"{info.name}.{name}"


def test_package_reexports() -> None:
    for name in report.__all__:
        assert getattr(report, name) is not None
