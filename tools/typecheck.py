"""mypy over the package `twofold`, with the settings of [tool.mypy] in pyproject.toml.

The package's folders are mapped by setuptools' package-dir (client/ is `twofold`, mpc/ is
`twofold.mpc`, ...), and mypy finds modules by folders alone, neither through an editable
install's import hook nor through package-dir. So this builds the package as it installs, a
tree of symbolic links in build/typecheck/ (the mypy_path of [tool.mypy]), runs mypy on it and
prints each finding with the path of the file in this checkout.

    .venv/bin/python -m tools.typecheck [mypy options]
"""

from __future__ import annotations

import os
import shutil
import sys
import tomllib
from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / "build" / "typecheck"


def link_tree() -> dict[str, str]:
    """Builds TREE from package-dir: the top package a folder of links to its folder's files,
    each subpackage a link to its folder. Returns the paths mypy reports under TREE, by the
    paths they stand for (relative to ROOT), the longest first."""
    package_dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"]
    shutil.rmtree(TREE, ignore_errors=True)
    paths = {}
    for package, folder in sorted(package_dirs.items(), key=lambda item: item[0].count(".")):
        link = TREE.joinpath(*package.split("."))
        if "." in package:
            link.symlink_to(ROOT / folder, target_is_directory=True)
        else:
            link.mkdir(parents=True)
            for source in (ROOT / folder).iterdir():
                (link / source.name).symlink_to(source)
        paths[f"{link.relative_to(ROOT)}/"] = f"{folder}/"
    return dict(sorted(paths.items(), key=lambda item: -len(item[0])))


def main() -> int:
    os.chdir(ROOT)  # where mypy finds pyproject.toml, and the paths it reports start
    paths = link_tree()
    stdout, stderr, status = api.run(sys.argv[1:])
    for line in stdout.splitlines():
        for link, folder in paths.items():
            if line.startswith(link):
                line = folder + line[len(link):]
                break
        print(line)
    print(stderr, end="", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
