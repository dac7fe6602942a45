"""Shared fixtures. Blender runs in this process from the bpy wheel, with a throwaway user
profile, and the add-on is installed from the built zip exactly as a user would install it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("INR_SHARED", ROOT.parent / "shared"))
MESHES = SHARED / "data" / "meshes"
if not (SHARED / "tools" / "meshmetrics.py").is_file():
    raise pytest.UsageError(
        f"the shared data and tools are missing at {SHARED}: check out the project beside "
        "its shared/ folder, or set INR_SHARED"
    )
# The worker package is imported as the worker process imports it, without the Blender package.
sys.path[:0] = [str(SHARED / "tools"), str(ROOT / "scripts"), str(ROOT / "inr_addon")]

from headless import start_blender


def built_zip() -> Path:
    zips = sorted((ROOT / "dist").glob("inr_addon-*.zip"))
    if not zips:
        pytest.exit("dist/inr_addon-*.zip is missing: run the tests with `make test`", returncode=2)
    return zips[-1]


@pytest.fixture(scope="session")
def addon():
    """The add-on installed from dist/ into a temporary profile and enabled; yields bpy."""
    yield start_blender(built_zip())


@pytest.fixture
def scene(addon):
    """An empty scene for each test."""
    addon.ops.wm.read_homefile(use_empty=True)
    return addon.context.scene
