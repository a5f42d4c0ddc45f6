"""The package's rules of direction (docs/architecture.md), checked on every module's imports.

Every `import` and `from ... import` is counted, those inside functions and `TYPE_CHECKING` blocks
too: a lazy import still ties the layers together.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "voicegw"

ALLOWED: dict[str, set[str]] = {
    "audio": set(),
    "contracts": {"audio"},
    "rtp": {"audio", "contracts"},
    "sip": {"audio", "contracts", "rtp"},
    "models": {"audio", "contracts"},
    "transports": {"audio", "contracts", "rtp", "sip"},
    "realtime": {"audio", "contracts", "models"},
    "server": {"audio", "contracts", "rtp", "sip", "models", "transports", "realtime"},
    "extensions": {"realtime"},
}
"""Each layer and the layers of ours it may import; a layer may always import itself."""

# The tests' and scripts' helpers drive the whole product from outside, like the command line.
ALLOWED["testing"] = {*ALLOWED, "cli"}

IMPORTERS_OF_SERVER = {"cli", "server", "testing"}


def _layer_imports(path: Path) -> set[str]:
    """The top-level voicegw subpackages (or modules) that the module at `path` imports."""
    layers: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            # Relative imports would hide a crossing from this check: the package has none.
            assert node.level == 0, f"{path}: relative import"
            names = [node.module or ""]
            if node.module == "voicegw":
                names = [f"voicegw.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "voicegw" and len(parts) > 1:
                layers.add(parts[1])
    return layers


def _modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        layer = relative.parts[0].removesuffix(".py")
        found.append((layer, path))
    return found


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_what_it_may(layer: str) -> None:
    crossings = {
        str(path.relative_to(PACKAGE)): sorted(_layer_imports(path) - ALLOWED[layer] - {layer})
        for module_layer, path in _modules()
        if module_layer == layer
    }
    assert {module: bad for module, bad in crossings.items() if bad} == {}


def test_only_the_command_line_imports_the_server() -> None:
    importers = {layer for layer, path in _modules() if "server" in _layer_imports(path)}
    assert importers <= IMPORTERS_OF_SERVER


def test_nothing_in_the_product_imports_the_testing_helpers() -> None:
    importers = {layer for layer, path in _modules() if "testing" in _layer_imports(path)}
    assert importers <= {"testing"}


def test_every_layer_has_a_rule() -> None:
    layers = {layer for layer, path in _modules() if path.parent != PACKAGE}
    assert layers <= set(ALLOWED)


def test_the_check_sees_a_crossing(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "from voicegw.audio.codecs import codec_for\n"
        "def lazy():\n"
        "    import voicegw.realtime.session\n"
        "    from voicegw import server\n"
    )
    assert _layer_imports(module) == {"audio", "realtime", "server"}
