"""Shared fixtures. Blender runs in this process from the bpy wheel, with a throwaway user
profile, and the add-on is installed from the built zip exactly as a user would install it."""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
MESHES = SHARED / "data" / "meshes"
sys.path.insert(0, str(SHARED / "tools"))

# Set before bpy is imported anywhere, so that no test touches a real Blender profile.
_PROFILE = tempfile.mkdtemp(prefix="inr_addon_profile_")
os.environ["BLENDER_USER_RESOURCES"] = _PROFILE


def built_zip() -> Path:
    zips = sorted((ROOT / "dist").glob("inr_addon-*.zip"))
    if not zips:
        pytest.exit("dist/inr_addon-*.zip is missing: run the tests with `make test`", returncode=2)
    return zips[-1]


@pytest.fixture(scope="session")
def addon():
    """The add-on installed from dist/ into the temporary profile and enabled; yields bpy."""
    import bpy

    result = bpy.ops.extensions.package_install_files(
        filepath=str(built_zip()), repo="user_default", enable_on_install=True)
    assert result == {"FINISHED"}
    assert "bl_ext.user_default.inr_addon" in bpy.context.preferences.addons
    yield bpy


@pytest.fixture
def scene(addon):
    """An empty scene for each test."""
    bpy = addon
    bpy.ops.wm.read_homefile(use_empty=True)
    return bpy.context.scene
