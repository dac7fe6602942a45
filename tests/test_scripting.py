"""Scripts find the operators: the install page's "From a script" block, run as written in a new Python
session where the extension is installed but, as in every new `bpy` session, not enabled."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT, built_zip
from test_docs import blocks

SESSION = """
import json, os, sys, tempfile
os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="inr_addon_profile_")
import bpy

bpy.ops.extensions.package_install_files(filepath=sys.argv[1], repo="user_default", enable_on_install=False)
before = "fit_mesh" in dir(bpy.ops.inr)
exec(compile(sys.argv[2], "docs/install.md", "exec"), {"__name__": "__main__"})
addon = bpy.context.preferences.addons["bl_ext.user_default.inr_addon"]
print(json.dumps({
    "before": before,
    "after": "fit_mesh" in dir(bpy.ops.inr),
    "python_path": addon.preferences.python_path,
    "fitted": "Suzanne_inr" in bpy.data.objects,
}))
"""


def test_the_install_pages_script_enables_the_addon_and_sets_the_worker_python():
    (code,) = [code for _, language, code, _ in blocks(ROOT / "docs" / "install.md") if "addon_enable" in code]
    ran = subprocess.run(
        [sys.executable, "-c", SESSION, str(built_zip()), code],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    result = json.loads(ran.stdout.strip().splitlines()[-1])
    assert result == {"before": False, "after": True, "python_path": sys.executable, "fitted": True}, result
