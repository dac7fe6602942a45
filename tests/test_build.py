"""The extension zip is made from the source tree with Python's standard library alone (`make build`
needs no .venv), holds what Blender's own `blender_ext.py build` puts in it, and passes its validation."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

from conftest import ROOT

BLENDER = ROOT / ".venv" / "lib" / "python3.11" / "site-packages" / "bpy" / "5.0" / "scripts"
BLENDER_EXT = BLENDER / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
BLENDER_TAGS = BLENDER / "modules" / "_bpy_internal" / "extensions" / "tags.py"


def contents(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_the_zip_is_blender_exts_zip_made_with_the_standard_library_alone(tmp_path):
    # -I -S: no site-packages, no environment, no user folder: only the standard library can be imported
    built = subprocess.run(
        [sys.executable, "-I", "-S", str(ROOT / "scripts" / "build_zip.py"), "--out", str(tmp_path / "ours")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (ours,) = (tmp_path / "ours").glob("inr_addon-*.zip")

    source = tmp_path / "source"  # what blender_ext builds from: the manifest beside the package's contents
    shutil.copytree(ROOT / "inr_addon", source)
    shutil.copy(ROOT / "blender_manifest.toml", source)
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    command = [sys.executable, str(BLENDER_EXT), "build", "--source-dir", str(source), "--output-dir", str(theirs)]
    subprocess.run(command, capture_output=True, check=True)
    (blenders,) = theirs.glob("inr_addon-*.zip")
    assert ours.name == blenders.name
    assert contents(ours) == contents(blenders)

    validate = [sys.executable, str(BLENDER_EXT), "validate", str(ours), "--valid-tags", str(BLENDER_TAGS)]
    checked = subprocess.run(validate, capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_make_build_needs_no_venv(tmp_path):
    """With no .venv at all, `make build` only runs the standard-library script (the check is skipped)."""
    planned = subprocess.run(
        ["make", "--dry-run", "--always-make", "build", f"VENV={tmp_path / 'no-venv'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "scripts/build_zip.py" in planned
    assert "pip install" not in planned and "-m venv" not in planned, planned
