# make demo   set up .venv and run the demo (fit Suzanne, extract twice, render a comparison)
# make test   set up .venv, build the extension zip and run the tests
# make build  write dist/inr_addon-<version>.zip
# make bench  measure presets and Voxel Remesh on ../shared/data/meshes, and modelling (slow)

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt | cksum | cut -d' ' -f1)
BLENDER_EXT := $(VENV)/lib/python3.11/site-packages/bpy/5.0/scripts/addons_core/bl_pkg/cli/blender_ext.py
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' blender_manifest.toml)
ZIP := dist/inr_addon-$(VERSION).zip
SOURCES := blender_manifest.toml $(shell find inr_addon -name '*.py')

.PHONY: setup build test demo bench clean

setup: $(STAMP)

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $@

build: $(ZIP)

# The zip holds the manifest and the contents of inr_addon/ at its top, as Blender expects.
$(ZIP): $(STAMP) $(SOURCES)
	rm -rf build/inr_addon && mkdir -p build/inr_addon dist
	cp blender_manifest.toml build/inr_addon/
	cp -r inr_addon/. build/inr_addon/
	$(PY) $(BLENDER_EXT) validate build/inr_addon
	$(PY) $(BLENDER_EXT) build --source-dir build/inr_addon --output-dir dist

test: $(ZIP)
	$(PY) -m pytest -q tests

demo: $(ZIP)
	$(PY) scripts/demo.py --zip $(ZIP) --out out/demo

bench: $(ZIP)
	$(PY) bench/bench.py --zip $(ZIP) --out out/bench
	$(PY) bench/modelling.py --out out/bench-modelling

clean:
	rm -rf build dist out
