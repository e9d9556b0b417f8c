"""The arm64 artifacts infra/build.py makes are the ones that ship: their compiled modules are all
aarch64, their pure-Python parts import and run on this (x86_64) machine from the code folder
alone (the worker drains a queue, the web function serves a collected static file), and a
compiled module of another architecture fails the build. (Builds from the lock file: needs PyPI.)"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.vendor_independent

KEY = "artifact-test-" + "k" * 40


def _build_module():
    spec = importlib.util.spec_from_file_location("lambda_build", REPO_ROOT / "infra" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lambda-build")
    built = {}
    for function in ("worker", "web"):
        out = root / function
        subprocess.run(
            [
                sys.executable,
                str(REPO_ROOT / "infra" / "build.py"),
                "--function",
                function,
                "--out",
                str(out),
                "--arch",
                "arm64",
            ],
            check=True,
            capture_output=True,
            timeout=900,
        )
        built[function] = out
    return built


def _run_from(folder: Path, code: str, **env: str) -> dict:
    """``code`` in a fresh interpreter that sees the code folder and the standard library only
    (as on Lambda: no site-packages); its last stdout line as JSON."""
    done = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            "-c",
            f"import sys; sys.path.insert(0, {str(folder)!r})\n{code}",
        ],
        env={"PATH": "/usr/bin:/bin", "AWS_LAMBDA_FUNCTION_NAME": "bgtask-artifact-test", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_arm64_artifacts_hold_only_aarch64_compiled_modules(artifacts):
    build = _build_module()
    for folder in artifacts.values():
        compiled = [p for p in folder.rglob("*.so")]
        assert compiled, "no compiled module at all: psycopg's binary wheel is missing"
        assert {build.elf_machine(p) for p in compiled} == {build.ELF_MACHINES["arm64"]}
        assert build.wrong_architecture(folder, "arm64") == []


def test_the_arm64_worker_runs_a_batch_from_its_code_folder_alone(artifacts, tmp_path):
    summary = _run_from(
        artifacts["worker"],
        """
import json
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from handlers import worker
from handlers.local_context import LocalContext
print(json.dumps(worker.handler({"duration": 2}, LocalContext(timeout=30))))
""",
        DJANGO_SETTINGS_MODULE="handlers.project.worker_settings",
        DATABASE_URL=f"sqlite:///{tmp_path / 'artifact.sqlite3'}",
        DJANGO_SECRET_KEY=KEY,
    )
    assert summary["ran"] is True and summary["failed"] == 0


def test_the_arm64_web_function_serves_its_collected_static_files(artifacts, tmp_path):
    manifest = json.loads((artifacts["web"] / "staticfiles" / "staticfiles.json").read_text())
    hashed = manifest["paths"]["admin/css/base.css"]
    event = json.loads((REPO_ROOT / "infra" / "events" / "web-status.json").read_text())
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/static/{hashed}"
    answer = _run_from(
        artifacts["web"],
        f"""
import json
from handlers import web
from handlers.local_context import LocalContext
answer = web.handler({event!r}, LocalContext(timeout=30))
print(json.dumps({{"status": answer["statusCode"], "headers": answer["headers"]}}))
""",
        DJANGO_SETTINGS_MODULE="handlers.project.settings",
        DATABASE_URL=f"sqlite:///{tmp_path / 'unused.sqlite3'}",
        DJANGO_SECRET_KEY=KEY,
    )
    assert answer["status"] == 200
    assert answer["headers"]["content-type"].startswith("text/css")
    assert "immutable" in answer["headers"]["cache-control"]


def test_a_compiled_module_of_another_architecture_fails_the_build(tmp_path):
    build = _build_module()
    # A compiled module of this (x86_64) machine, as a wheel for the wrong platform would bring.
    host_module = next(Path(sysconfig.get_paths()["stdlib"]).rglob("lib-dynload/*.so"))
    assert build.elf_machine(host_module) == build.ELF_MACHINES["x86_64"]
    folder = tmp_path / "code"
    (folder / "somepackage").mkdir(parents=True)
    shutil.copy(host_module, folder / "somepackage" / host_module.name)
    (folder / "somepackage" / "__init__.py").write_text("")

    assert build.wrong_architecture(folder, "x86_64") == []
    assert build.wrong_architecture(folder, "arm64") == [f"somepackage/{host_module.name}"]
    with pytest.raises(SystemExit, match="not built for arm64"):
        build.check_architecture(folder, "arm64")


def test_the_bytecode_is_the_runtimes_level_even_when_the_build_runs_optimised(tmp_path):
    # Lambda imports at level 0 (no -O): a build run under `python -O` must still ship
    # name.cpython-312.pyc, or every cold start compiles every module again.
    folder = tmp_path / "code"
    (folder / "package").mkdir(parents=True)
    (folder / "package" / "__init__.py").write_text("VALUE = 1\n")
    build_py = str(REPO_ROOT / "infra" / "build.py")
    done = subprocess.run(
        [
            sys.executable,
            "-O",
            "-c",
            "import importlib.util, sys; from pathlib import Path\n"
            f"spec = importlib.util.spec_from_file_location('b', {build_py!r})\n"
            "b = importlib.util.module_from_spec(spec); spec.loader.exec_module(b)\n"
            f"b.compile_bytecode(Path({str(folder)!r}))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    tag = sys.implementation.cache_tag
    assert (folder / "package" / "__pycache__" / f"__init__.{tag}.pyc").is_file()
    assert _build_module().missing_bytecode(folder) == []
    (folder / "package" / "late.py").write_text("")
    assert _build_module().missing_bytecode(folder) == ["package/late.py"]
