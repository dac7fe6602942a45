"""The examples in README.md and docs/*.md are tests.

Every ```python block runs in real Blender (the bpy wheel, the add-on installed from the zip, the real
worker), the blocks of one page in order in one namespace and one fresh scene, in a working folder that
holds the example files the pages name: ``scan.ply`` (points of a small ellipsoid, with normals) and
``photo.png`` (a dark disc on white). A block preceded by the line ``<!-- illustration -->`` is not run.

Every call ``inr.NAME(...)`` anywhere in the pages, in blocks of any kind, illustrations and inline code
included, must name an operator of the add-on and only its arguments, and every settings table (a table
whose first header cell is ``inr.NAME`` argument or ``Preferences`` setting) must list real properties
with their real defaults: a renamed operator or argument fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT
from headless import ADDON

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ILLUSTRATION = "<!-- illustration -->"
FENCE = re.compile(r"^```(\w*)\s*$")


def blocks(page: Path) -> list[tuple[int, str, str, bool]]:
    """(first line number, language, code, runnable) of each fenced block of ``page``."""
    found, lines = [], page.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if match and match.group(1):
            previous = next((line.strip() for line in reversed(lines[:index]) if line.strip()), "")
            end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
            code = "\n".join(lines[index + 1 : end]) + "\n"
            found.append((index + 2, match.group(1), code, previous != ILLUSTRATION))
            index = end
        index += 1
    return found


def runnable(page: Path) -> list[tuple[int, str]]:
    return [(line, code) for line, language, code, run in blocks(page) if language == "python" and run]


RUN_PAGES = [page for page in PAGES if runnable(page)]


def write_examples(bpy, folder: Path) -> None:
    """The files the examples name, in ``folder``."""
    rng = np.random.default_rng(0)
    directions = rng.normal(size=(1000, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    axes = np.array([1.0, 0.7, 0.5])
    points, normals = directions * axes, directions / axes
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    header = ["ply", "format ascii 1.0", f"element vertex {len(points)}"]
    header += [f"property float {name}" for name in ("x", "y", "z", "nx", "ny", "nz")] + ["end_header"]
    rows = [" ".join(f"{value:.6f}" for value in row) for row in np.hstack([points, normals])]
    (folder / "scan.ply").write_text("\n".join(header + rows) + "\n")

    height, width = 48, 64
    y, x = np.mgrid[0:height, 0:width]
    disc = (x - 30) ** 2 + (y - 24) ** 2 < 18**2
    rgba = np.ones((height, width, 4), np.float32)
    rgba[disc, :3] = (0.6, 0.1, 0.05)
    image = bpy.data.images.new("photo_source", width, height)
    image.pixels.foreach_set(rgba.ravel())
    image.filepath_raw, image.file_format = str(folder / "photo.png"), "PNG"
    image.save()
    bpy.data.images.remove(image)


def test_the_pages_have_runnable_examples():
    assert ROOT / "README.md" in RUN_PAGES
    assert len(RUN_PAGES) >= 5, [page.name for page in RUN_PAGES]


@pytest.mark.parametrize("page", RUN_PAGES, ids=[page.name for page in RUN_PAGES])
def test_examples_run(scene, page, tmp_path, monkeypatch):
    bpy = pytest.importorskip("bpy")
    from test_blender import jobs_left, worker_processes

    write_examples(bpy, tmp_path)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__main__"}
    for line, code in runnable(page):
        where = f"{page.relative_to(ROOT)}:{line}"
        exec(compile(code, where, "exec"), namespace)  # noqa: S102 (the pages are this repository's own examples)
    assert not worker_processes() and not jobs_left(bpy)


def calls(text: str) -> list[tuple[str, str]]:
    """(operator, argument text) of every ``inr.NAME(...)`` in ``text``."""
    found = []
    for match in re.finditer(r"(?<![\w.])(?:bpy\.ops\.)?inr\.(\w+)\(", text):
        depth, start = 1, match.end()
        for end in range(start, len(text)):
            depth += {"(": 1, ")": -1}.get(text[end], 0)
            if depth == 0:
                found.append((match.group(1), text[start:end]))
                break
    return found


def keywords(arguments: str) -> list[str]:
    """The keyword names in a call's argument text (split at its top-level commas)."""
    pieces, depth, current = [], 0, ""
    for char in arguments:
        depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(char, 0)
        if char == "," and depth == 0:
            pieces.append(current)
            current = ""
        else:
            current += char
    pieces.append(current)
    return [match.group(1) for piece in pieces if (match := re.match(r"\s*(\w+)\s*=(?!=)", piece))]


def operator_properties(bpy, name: str) -> dict:
    operator = getattr(bpy.ops.inr, name)
    return {prop.identifier: prop for prop in operator.get_rna_type().properties if prop.identifier != "rna_type"}


def test_every_operator_call_in_the_pages_uses_real_arguments(addon):
    problems, seen = [], 0
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for name, arguments in calls(text):
            seen += 1
            if name not in dir(addon.ops.inr):
                problems.append(f"{page.name}: inr.{name} is not an operator")
                continue
            known = operator_properties(addon, name)
            problems += [
                f"{page.name}: inr.{name} has no argument {key!r}" for key in keywords(arguments) if key not in known
            ]
    assert seen >= 20 and not problems, problems


def rna_default(prop) -> str:
    if prop.type == "ENUM":
        return prop.default
    if prop.type == "BOOLEAN":
        return str(prop.default)
    if prop.type == "STRING":
        return prop.default
    return f"{prop.default:g}"


def written_default(cell: str) -> str:
    value = cell.strip().strip("`").strip("'\"")
    try:
        return f"{float(value):g}"
    except ValueError:
        return value


def settings_tables(text: str) -> list[tuple[str, list[list[str]]]]:
    """(the table's subject: an operator name or "Preferences", its rows' cells) of each settings table."""
    tables, lines = [], text.splitlines()
    for index, line in enumerate(lines):
        match = re.match(r"\|\s*`(?:bpy\.ops\.)?inr\.(\w+)` argument\s*\||\|\s*(Preferences) setting\s*\|", line)
        if not match:
            continue
        rows = []
        for row in lines[index + 2 :]:
            if not row.startswith("|"):
                break
            rows.append([cell.strip() for cell in row.strip().strip("|").split("|")])
        tables.append((match.group(1) or match.group(2), rows))
    return tables


def test_every_settings_table_lists_real_properties_and_defaults(addon):
    preferences = addon.context.preferences.addons[ADDON].preferences
    problems, seen = [], 0
    for page in PAGES:
        for subject, rows in settings_tables(page.read_text(encoding="utf-8")):
            if subject == "Preferences":
                known = {prop.identifier: prop for prop in preferences.bl_rna.properties}
            else:
                known = operator_properties(addon, subject)
            for cells in rows:
                seen += 1
                name = cells[0].strip("`")
                if name not in known:
                    problems.append(f"{page.name}: {subject} has no setting {name!r}")
                elif written_default(cells[1]) != rna_default(known[name]):
                    problems.append(f"{page.name}: {subject}.{name} defaults to {rna_default(known[name])!r}")
    assert seen >= 20 and not problems, problems


def test_the_pages_link_to_files_that_exist():
    missing = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#\s]+)", page.read_text(encoding="utf-8")):
            if not target.startswith(("http://", "https://")) and not (page.parent / target).exists():
                missing.append(f"{page.name}: {target}")
    assert not missing, missing
