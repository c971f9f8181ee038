"""The layers point one way: the core knows no node, the recognizer's domain knows no transport."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).parent.parent
NODE_PACKAGES = {"camera_node", "recognizer_node", "notifier_node", "homeassistant_node"}
TRANSPORT = {"paho", "homesec.bus", "homesec.requests", "homesec.remote"}
DOMAIN = [
    REPO / "recognizer_node" / f"{m}.py" for m in ("gallery", "archive", "matching", "align", "pipeline")
] + [REPO / "homeassistant_node" / f"{m}.py" for m in ("entities", "house")]


def imported_modules(source: str, package: str) -> set[str]:
    """Every module `source` imports, at the top or inside a function, relative imports resolved
    against `package`; `from m import n` counts as importing both `m` and `m.n`."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1]) if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def imports_of(path: Path) -> set[str]:
    return imported_modules(path.read_text(), ".".join(path.relative_to(REPO).parts[:-1]))


def within(modules: set[str], packages: set[str]) -> set[str]:
    return {m for m in modules if any(m == p or m.startswith(p + ".") for p in packages)}


def test_the_walk_sees_lazy_and_relative_imports() -> None:
    source = "import os\n\ndef f():\n    import camera_node.service\n    from . import gallery\n    from .x import y\n"
    found = imported_modules(source, "recognizer_node")
    assert within(found, NODE_PACKAGES) == {
        "camera_node.service",
        "recognizer_node",
        "recognizer_node.gallery",
        "recognizer_node.x",
        "recognizer_node.x.y",
    }
    assert within(imported_modules("from paho.mqtt import client\n", "x"), TRANSPORT) == {
        "paho.mqtt",
        "paho.mqtt.client",
    }


@pytest.mark.parametrize("path", sorted((REPO / "homesec").rglob("*.py")), ids=lambda p: p.name)
def test_the_core_imports_no_node_package(path: Path) -> None:
    assert not within(imports_of(path), NODE_PACKAGES)


@pytest.mark.parametrize("path", DOMAIN, ids=lambda p: p.name)
def test_the_recognizer_domain_knows_no_transport(path: Path) -> None:
    assert not within(imports_of(path), TRANSPORT)


def top_level_imports(path: Path) -> set[str]:
    """The modules `path` imports when it is imported (not those its functions import when they run)."""
    tree = ast.parse(path.read_text())
    top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    return imported_modules(ast.unparse(ast.Module(body=top, type_ignores=[])), path.parent.name)


def test_every_node_registers_a_plugin_that_is_cheap_to_discover() -> None:
    from homesec.plugins import node_plugins

    plugins = node_plugins()
    assert [p.section for p in plugins] == ["camera", "recognizer", "notifier", "homeassistant"]
    for plugin in plugins:
        package = plugin.settings.__module__.split(".")[0]
        imported = top_level_imports(REPO / package / "plugin.py")
        assert within(imported, NODE_PACKAGES) <= {
            f"{package}.settings",
            f"{package}.settings.{plugin.settings.__name__}",
        }
        assert not within(imported, {"numpy", "PIL", "onnxruntime", "requests", "gpiozero", *TRANSPORT})
