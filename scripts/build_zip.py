"""Write the extension zip, dist/inr_addon-<version>.zip, from the source tree with nothing but Python's
standard library: blender_manifest.toml and the contents of inr_addon/ at the top of the zip, as Blender
expects and as Blender's own ``blender_ext.py build`` lays it out, less the manifest's
``[build] paths_exclude_pattern``.

    python3 scripts/build_zip.py [--out dist]

Blender's ``blender_ext.py validate`` checks the result where a Blender is at hand (``make build`` runs
it when .venv holds the bpy wheel).
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = "blender_manifest.toml"
PACKAGE = "inr_addon"
REQUIRED = ("schema_version", "id", "version", "name", "tagline", "maintainer", "type", "blender_version_min")


class BuildError(Exception):
    """A manifest or source tree the zip cannot be made from."""


def read_manifest(root: Path) -> dict:
    """The manifest, checked for the fields that name the zip and that Blender requires."""
    try:
        manifest = tomllib.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise BuildError(f"{root / MANIFEST}: {error}") from error
    missing = [key for key in REQUIRED if not manifest.get(key)]
    if missing:
        raise BuildError(f"{root / MANIFEST}: missing {', '.join(missing)}")
    return manifest


def excluded(relative: str, is_dir: bool, patterns: list[str]) -> bool:
    """Whether a path of the zip matches one of the manifest's gitignore-style exclude patterns: ``/x/``
    anchored at the top, ``x/`` a folder anywhere, ``*.pyc`` a file name anywhere."""
    parts = relative.split("/")
    for pattern in patterns:
        anchored, folder_only, core = pattern.startswith("/"), pattern.endswith("/"), pattern.strip("/")
        if folder_only and not is_dir:
            continue
        if anchored:  # folders are tested (and pruned) at their own depth
            if len(parts) == core.count("/") + 1 and fnmatch.fnmatchcase(relative, core):
                return True
        elif fnmatch.fnmatchcase(parts[-1], core):
            return True
    return False


def zip_entries(root: Path, patterns: list[str]) -> list[tuple[Path, str]]:
    """(file, name in the zip) for the manifest and every file under inr_addon/ that is not excluded."""
    package = root / PACKAGE
    entries = [(root / MANIFEST, MANIFEST)]
    for folder, folders, files in os.walk(package):
        relative_folder = Path(folder).relative_to(package).as_posix()
        prefix = "" if relative_folder == "." else relative_folder + "/"
        folders[:] = sorted(name for name in folders if not excluded(prefix + name, True, patterns))
        entries += [
            (Path(folder) / name, prefix + name)
            for name in sorted(files)
            if not excluded(prefix + name, False, patterns) and prefix + name != MANIFEST
        ]
    if not any(name == "__init__.py" for _, name in entries):
        raise BuildError(f"{package}: not a Python package (no __init__.py)")
    return entries


def build_zip(root: Path, out: Path) -> Path:
    """Write the zip into ``out``; returns its path. Written aside and moved into place when complete."""
    manifest = read_manifest(root)
    patterns = list(manifest.get("build", {}).get("paths_exclude_pattern", []))
    entries = zip_entries(root, patterns)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{manifest['id']}-{manifest['version']}.zip"
    partial = out / f".{path.name}.partial"
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for source, name in entries:
            archive.write(source, name)
    os.replace(partial, path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the source tree (default: this checkout)")
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="folder for the zip (default: dist)")
    args = parser.parse_args(argv)
    try:
        path = build_zip(args.root, args.out)
    except BuildError as error:
        print(f"build_zip: error: {error}", file=sys.stderr)
        return 1
    with zipfile.ZipFile(path) as archive:
        count = len(archive.namelist())
    print(f"created: {path} ({count} files, {path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
