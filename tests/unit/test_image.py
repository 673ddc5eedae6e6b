"""The image's environment, built without Docker from the Dockerfile's own COPY lines and `uv sync`.

For each target, the build stages are replayed into an empty folder (tests/support/image.py): exactly the paths
their COPY lines name, then their `uv sync`, offline. Then everything but the environment is deleted, as the
runtime stage gets only the environment, and its python imports every service's `__main__`. Production must not
carry the simulator, the local run, the stand-in or test tools; the `full` target must.
"""

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.image import lineage, replay, stages

SERVICES = ["omni_ingress", "omni_router", "omni_dispatcher", "omni_profiles", "omni_attachments"]
LOCAL_ONLY = ["omni_simulator", "omni_devrun", "nx_27017", "omni_example_test_provider"]
NOT_IN_PRODUCTION = ["nx-27017", "neosqlite", "omni-simulator", "omni-devrun", "omni-example-test-provider"]
TEST_TOOLS = ["pytest", "ruff", "mypy", "playwright", "testcontainers", "hypothesis", "uv", "hatchling"]

# Run by the environment's python, isolated (-I): nothing from this checkout or the caller's environment.
PROBE = """
import importlib, importlib.metadata as md, importlib.util, json, sys
services, local = json.loads(sys.argv[1]), json.loads(sys.argv[2])
files = {name: importlib.import_module(name + ".__main__").__file__ for name in services}
print(json.dumps({
    "prefix": sys.prefix,
    "files": files,
    "local": {name: importlib.util.find_spec(name) is not None for name in local},
    "distributions": sorted(d.metadata["Name"].lower() for d in md.distributions()),
    "routing_rules": sorted(e.name for e in md.entry_points(group="omni.routing_rules")),
    "providers": sorted(e.name for e in md.entry_points(group="omni.providers")),
}))
"""


def build(target: str, folder: Path) -> tuple[dict[str, Any], Path, float]:
    started = time.monotonic()
    made, venv = replay(target, folder)
    seconds = time.monotonic() - started
    assert venv.is_dir(), f"the replay made no environment at {venv}: {made.log}"
    for entry in venv.parent.iterdir():  # the runtime stage gets the environment and nothing else
        if entry != venv:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    probe = subprocess.run(
        [str(venv / "bin" / "python"), "-I", "-c", PROBE, json.dumps(SERVICES), json.dumps(LOCAL_ONLY)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert probe.returncode == 0, f"the image's environment cannot run the services:\n{probe.stderr}"
    found: dict[str, Any] = json.loads(probe.stdout)
    return found, venv, seconds


@pytest.mark.image
def test_default_image_runs_every_service_and_nothing_else(tmp_path: Path) -> None:
    found, venv, seconds = build(stages()[-1].name, tmp_path)  # `docker build .` builds the last stage
    print(f"production environment replayed in {seconds:.1f} s")
    for name, file in found["files"].items():
        assert Path(file).is_relative_to(venv), f"{name} is not installed in the environment: {file}"
    assert found["local"] == dict.fromkeys(LOCAL_ONLY, False)
    present = set(found["distributions"])
    assert not present & {*NOT_IN_PRODUCTION, *TEST_TOOLS}
    assert {"omni-cli", "omni-example-supervisor-rule", "uvicorn", "pymongo", "aio-pika"} <= present
    assert found["routing_rules"] == ["to_supervisor"]
    assert found["providers"] == []
    omni = subprocess.run([str(venv / "bin" / "omni"), "--help"], capture_output=True, text=True, check=False)
    assert omni.returncode == 0, omni.stderr
    assert "channels" in omni.stdout


@pytest.mark.image
def test_full_target_adds_the_simulator_the_local_run_and_the_stand_in(tmp_path: Path) -> None:
    found, venv, seconds = build("full", tmp_path)
    print(f"full environment replayed in {seconds:.1f} s")
    assert found["local"] == dict.fromkeys(LOCAL_ONLY, True)
    assert not set(found["distributions"]) & set(TEST_TOOLS)
    assert found["providers"] == ["test"]
    assert (venv / "bin" / "nx-27017").exists()


def test_production_is_the_default_target_and_gets_only_the_environment() -> None:
    every = stages()
    assert every[-1].name == "production", "`docker build .` builds the last stage"
    chain = lineage("production")
    assert [found.base for found in chain] == ["python:3.11-slim", "runtime"]
    builders = {
        found.name
        for found in every
        if any(i.cmd == "RUN" and "uv sync" in " ".join(i.value) for i in found.instructions)
    }
    assert builders == {"build", "build-full"}
    copies = [i for found in chain for i in found.all("COPY")]
    assert [(i.flag("from"), i.value) for i in copies] == [("build", ("/app/.venv", "/app/.venv"))]
    runs = [" ".join(i.value) for found in chain for i in found.all("RUN")]
    assert not [run for run in runs if "uv" in run.split() or "pip" in run.split() or "apt-get" in run]


@pytest.mark.parametrize("target", ["production", "full"])
def test_runtime_stages_share_the_base_of_the_build_stage(target: str) -> None:
    """The environment's python is a link to the base image's: the runtime must be the same image."""
    by_name = {found.name: found for found in stages()}
    [copy] = [i for found in lineage(target) for i in found.all("COPY") if i.flag("from")]
    builder = lineage(str(copy.flag("from")))[0]
    assert lineage(target)[0].base == builder.base == "python:3.11-slim"
    assert by_name[target].all("USER")[-1].value[0] == "10001:10001"  # omni, numeric for runAsNonRoot
