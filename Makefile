# make demo   set up .venv and run the demo (fit Suzanne, extract twice, render a comparison)
# make test   set up .venv, build the extension zip and run the tests
# make check  lint, format check and type check, in their own .venv-check
# make build  write dist/inr_addon-<version>.zip (Python 3.11's standard library only; checked by Blender's
#             blender_ext.py where .venv has the bpy wheel)
# make bench  measure presets, Voxel Remesh, SDF grid nodes, make_mesh_watertight, the exact-SDF floor and modelling
#             on ../shared/data/meshes (slow; BENCH_ARGS=--quick for a subset), and point clouds against
#             Screened Poisson and GN volumes (POINTS_ARGS=--quick; open3d-cpu's import needs libusb-1.0-0,
#             which the recipe apt-gets when missing)

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-batch.txt | cksum | cut -d' ' -f1)
BLENDER_EXT := $(VENV)/lib/python3.11/site-packages/bpy/5.0/scripts/addons_core/bl_pkg/cli/blender_ext.py
# The tags extensions.blender.org accepts, as Blender ships them.
BLENDER_TAGS := $(VENV)/lib/python3.11/site-packages/bpy/5.0/scripts/modules/_bpy_internal/extensions/tags.py
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' blender_manifest.toml)
ZIP := dist/inr_addon-$(VERSION).zip
SOURCES := blender_manifest.toml $(shell find inr_addon -name '*.py')
SOURCES += inr_addon/requirements-worker.txt

.PHONY: setup build test demo bench clean check

setup: $(STAMP)

$(STAMP): requirements.txt requirements-batch.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-batch.txt -c requirements.txt
	rm -f $(VENV)/.installed-*
	touch $@

build: $(ZIP)

# The zip holds the manifest and the contents of inr_addon/ at its top, as Blender expects.
$(ZIP): $(SOURCES) scripts/build_zip.py
	$(PYTHON) scripts/build_zip.py --out dist
	if [ -f $(BLENDER_EXT) ]; then $(PY) $(BLENDER_EXT) validate $(ZIP) --valid-tags $(BLENDER_TAGS); fi

test: $(STAMP) $(ZIP)
	$(PY) -m pytest -q tests

demo: $(STAMP) $(ZIP)
	$(PY) scripts/demo.py --zip $(ZIP) --out out/demo

bench: $(STAMP) $(ZIP)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	$(PY) bench/bench.py --zip $(ZIP) --out bench/results --floor-cache bench/results/floor_cache.json $(BENCH_ARGS)
	$(PY) bench/modelling.py --out out/bench-modelling --results bench/results/modelling --resolution 256
	$(PY) bench/modelling.py --out out/bench-modelling-512 --results bench/results/modelling --resolution 512
	dpkg -s libusb-1.0-0 >/dev/null 2>&1 || apt-get install -y libusb-1.0-0
	$(PY) bench/points.py --zip $(ZIP) --out bench/results/points $(POINTS_ARGS)
	$(PY) bench/scan.py --zip $(ZIP) --out bench/results/scan
	$(PY) bench/adaptivity.py --zip $(ZIP) --out bench/results/adaptivity

clean:
	rm -rf build dist out

# The checks get their own venv: fake-bpy-module's `bpy` stubs must never stand beside the real bpy.
CHECK_VENV := .venv-check
CHECK_STAMP := $(CHECK_VENV)/.installed-$(shell cat requirements-check.txt | cksum | cut -d' ' -f1)

$(CHECK_STAMP): requirements-check.txt
	$(PYTHON) -m venv $(CHECK_VENV)
	$(CHECK_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-check.txt
	rm -f $(CHECK_VENV)/.installed-*
	touch $@

check: $(CHECK_STAMP)
	$(CHECK_VENV)/bin/ruff check .
	$(CHECK_VENV)/bin/ruff format --check .
	$(CHECK_VENV)/bin/mypy
