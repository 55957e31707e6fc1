"""Each package owns one layer and data flows one way: a package imports only the layers below
it, so the import graph between packages stays acyclic (a cycle is how layers blur)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# package folder -> the twofold packages it may import (besides itself)
LAYERS = {
    "mpc": set(),
    "owners": {"mpc"},
    "sorting_join": {"mpc", "owners"},
    "ml": {"mpc", "owners", "sorting_join"},
    "servers": {"mpc", "owners", "sorting_join", "ml"},
}


def imported_packages(folder: Path) -> dict[str, set[str]]:
    """twofold subpackage -> files of folder importing it."""
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                parts = name.split(".")
                if parts[0] == "twofold" and len(parts) > 1:
                    found.setdefault(parts[1], set()).add(str(path.relative_to(ROOT)))
    return found


def test_packages_import_only_the_layers_below_them():
    wrong = {f"{package} imports {other} ({', '.join(sorted(files))})"
             for package, allowed in LAYERS.items()
             for other, files in imported_packages(ROOT / package).items()
             if other != package and other not in allowed}
    assert not wrong, sorted(wrong)
