"""The benchmark's outputs: a Markdown table with same-run ratios, PNG plots and contact sheets."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from statistics import median

import headless

FLOOR, VOXEL = "exact-SDF floor", "Voxel Remesh operator"


def _peak(row: dict) -> float:
    return max(row.get("own_MB", 0.0), row.get("worker_MB", 0.0), row.get("gpu_MB", 0.0))


def _by(rows: list[dict], method: str) -> dict:
    return {(row["mesh"], row["resolution"]): row for row in rows if row["method"] == method}


def _ratio(value: float, base: dict | None, key: str, text: str = "{:.2f}") -> str:
    return text.format(value / base[key]) if base else ""


def markdown(rows: list[dict]) -> str:
    floors, voxels = _by(rows, FLOOR), _by(rows, VOXEL)
    lines = [
        (
            "| mesh | method | res | step | wall s | × Voxel Remesh operator time | peak MB | field KB | Chamfer-L1 | × floor "
            "| × Voxel Remesh operator | IoU | IoU − floor | normal cons. | F-score | boundary / non-manifold edges |"
        ),
        "|" + "---|" * 16,
    ]
    for row in rows:
        key = (row["mesh"], row["resolution"])
        floor, voxel = floors.get(key), voxels.get(key)
        cells = [
            row["mesh"],
            row["method"],
            str(row["resolution"]),
            row.get("step", ""),
            f"{row['wall_s']:.1f}",
            _ratio(row["wall_s"], voxel, "wall_s"),
            f"{_peak(row):.0f}",
            f"{row['field_bytes'] / 1e3:.0f}" if "field_bytes" in row else "",
            f"{row['chamfer_l1']:.2e}",
            _ratio(row["chamfer_l1"], floor, "chamfer_l1"),
            _ratio(row["chamfer_l1"], voxel, "chamfer_l1"),
            f"{row['iou']:.4f}",
            f"{row['iou'] - floor['iou']:+.4f}" if floor else "",
            f"{row['normal_consistency']:.4f}",
            f"{row['f_score']:.4f}",
            f"{row['boundary_edges']} / {row['nonmanifold_edges']}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def summary(rows: list[dict], closed: list[str]) -> str:
    """Per field preset and resolution: the geometric mean over the closed meshes of Chamfer-L1 / floor."""
    floors = _by(rows, FLOOR)
    ratios = defaultdict(list)
    for row in rows:
        key = (row["mesh"], row["resolution"])
        if row["mesh"] in closed and key in floors and row["method"] != FLOOR:
            ratios[(row["method"], row["resolution"])].append(
                (row["chamfer_l1"] / floors[key]["chamfer_l1"], row["iou"] - floors[key]["iou"], row["wall_s"])
            )
    lines = [
        "| method | res | closed meshes | Chamfer-L1 × floor (geometric mean) | worst | IoU − floor (worst) | wall s (median) |",
        "|---|---|---|---|---|---|---|",
    ]
    for (method, resolution), values in sorted(ratios.items(), key=lambda item: (item[0][1], item[0][0])):
        mean = math.exp(sum(math.log(v[0]) for v in values) / len(values))
        lines.append(
            f"| {method} | {resolution} | {len(values)} | {mean:.2f} | {max(v[0] for v in values):.2f} | "
            f"{min(v[1] for v in values):+.4f} | {median(v[2] for v in values):.1f} |"
        )
    return "\n".join(lines) + "\n"


def plots(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    floors = _by(rows, FLOOR)
    methods = sorted({row["method"] for row in rows})
    figure, axis = plt.subplots(figsize=(7, 5))
    for method in methods:
        points = [
            (row["wall_s"], row["chamfer_l1"] / floors[(row["mesh"], 256)]["chamfer_l1"])
            for row in rows
            if row["method"] == method and row["resolution"] == 256 and (row["mesh"], 256) in floors
        ]
        if points and method != FLOOR:
            axis.scatter(*zip(*points), label=method)
    axis.set(
        xscale="log", yscale="log", xlabel="wall time, s (this run's machine)", ylabel="Chamfer-L1 / exact-SDF floor"
    )
    axis.set_title("Quality against time at 256")
    axis.axhline(1.0, color="grey", lw=0.8)
    axis.legend()
    figure.savefig(out / "quality_vs_time.png", dpi=110, bbox_inches="tight")
    plt.close(figure)

    figure, (times, memory) = plt.subplots(1, 2, figsize=(11, 4.5))
    for method in methods:
        by_resolution = defaultdict(list)
        for row in rows:
            if row["method"] == method:
                by_resolution[row["resolution"]].append(row)
        resolutions = sorted(by_resolution)
        times.plot(
            resolutions, [median(r["wall_s"] for r in by_resolution[x]) for x in resolutions], "o-", label=method
        )
        memory.plot(resolutions, [median(_peak(r) for r in by_resolution[x]) for x in resolutions], "o-", label=method)
    for axis, label in ((times, "wall time, s (median over meshes)"), (memory, "peak memory, MB (median)")):
        axis.set(xscale="log", yscale="log", xlabel="resolution (cells along the longest side)", ylabel=label)
        axis.set_xticks([128, 256, 512, 1024], ["128", "256", "512", "1024"])
    times.legend(fontsize=8)
    figure.savefig(out / "time_memory_vs_resolution.png", dpi=110, bbox_inches="tight")
    plt.close(figure)

    figure, axis = plt.subplots(figsize=(7, 5))
    for method in (m for m in methods if m.startswith("field")):
        points = [
            (row["field_bytes"] / 1e6, row["chamfer_l1"] / floors[(row["mesh"], row["resolution"])]["chamfer_l1"])
            for row in rows
            if row["method"] == method and "field_bytes" in row and (row["mesh"], row["resolution"]) in floors
        ]
        if points:
            axis.scatter(*zip(*points), label=method)
    axis.set(xscale="log", xlabel="field size in the .blend, MB", ylabel="Chamfer-L1 / floor at the same resolution")
    axis.set_title("Field bytes against quality")
    axis.legend()
    figure.savefig(out / "field_bytes_vs_quality.png", dpi=110, bbox_inches="tight")
    plt.close(figure)


def write(rows: list[dict], out: Path, closed: list[str]) -> None:
    text = "# Benchmark results\n\n## Ratios over the closed meshes\n\n" + summary(rows, closed)
    text += "\n## Every row\n\n" + markdown(rows)
    (out / "results.md").write_text(text)
    plots(rows, out)


def contact_sheet(bpy, objects: list, labels: list[str], path: Path) -> None:
    """Render ``objects`` side by side (Workbench), labelled, to ``path``."""
    from mathutils import Vector

    size = max(max(obj.dimensions) for obj in objects)
    spacing = 1.25 * size
    for index, obj in enumerate(objects):
        centre = sum((Vector(corner) for corner in obj.bound_box), Vector()) / 8
        obj.location = (index * spacing - centre.x, -centre.y, -centre.z)
        obj.color = (0.8, 0.62, 0.45, 1.0)
        bpy.ops.object.text_add(location=(index * spacing, 0, -0.62 * size), rotation=(math.pi / 2, 0, 0))
        label = bpy.context.active_object
        label.data.body, label.data.align_x, label.data.size = labels[index], "CENTER", 0.09 * size
        label.color = (0.15, 0.15, 0.15, 1.0)
    for obj in bpy.context.scene.objects:
        if obj.type == "MESH" and obj not in objects:
            obj.hide_render = True
    bpy.ops.object.camera_add(location=((len(objects) - 1) / 2 * spacing, -10 * size, 0), rotation=(math.pi / 2, 0, 0))
    camera = bpy.context.active_object
    camera.data.type = "ORTHO"
    camera.data.ortho_scale = 4.2 * spacing
    scene = bpy.context.scene
    scene.camera = camera
    headless.workbench_settings(scene, 1600, 480)
    scene.render.filepath = str(path.resolve())
    bpy.ops.render.render(write_still=True)
