"""Build the wheel and sdist, install the wheel in a fresh venv outside the checkout, run the demo.

``make wheel-check`` runs this. It proves what a user of ``pip install bgtask`` gets: the wheel
carries the migrations, the admin templates and ``py.typed``; the sdist carries the licence and the
changelog and builds that same wheel (``python -m build`` makes the wheel from the sdist); and the
installed package, with nothing of this checkout on ``sys.path``, migrates a database and runs the
demo's tasks to their outcomes. Exit status 0 means all of that held.

The demo app (``handlers/demo``) is not part of the library, so it is copied next to a settings
module written here, in a temporary directory; only ``bgtask`` comes from the wheel.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SETTINGS = """\
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "wheel-check"
USE_TZ = True
TIME_ZONE = "UTC"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "demo.sqlite3"}}
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "bgtask",
    "handlers.demo",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.contrib.auth.context_processors.auth",
                                           "django.contrib.messages.context_processors.messages",
                                           "django.template.context_processors.request"]},
    }
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
MAX_ATTEMPTS = 3
"""

# What the installed package must be able to do, run by the venv's Python from the temp dir.
PROBE = """\
import importlib.metadata, pathlib, sys
import django
django.setup()
import bgtask
from django.template.loader import get_template
here = pathlib.Path(bgtask.__file__).resolve()
assert pathlib.Path(sys.prefix).resolve() in here.parents, f"bgtask imported from {here}"
assert importlib.metadata.version("bgtask") == bgtask.__version__
assert (here.parent / "py.typed").is_file()
get_template("admin/bgtask/task/change_list.html")
print(f"bgtask {bgtask.__version__} from {here.parent}")
"""


def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    print("+", " ".join(str(part) for part in command), flush=True)
    return subprocess.run(command, check=True, text=True, **kwargs)  # type: ignore[call-overload,no-any-return]


def build(dist: Path) -> tuple[Path, Path]:
    shutil.rmtree(dist, ignore_errors=True)
    run(
        [sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)], stdout=subprocess.DEVNULL
    )
    (wheel,) = dist.glob("bgtask-*.whl")
    (sdist,) = dist.glob("bgtask-*.tar.gz")
    return wheel, sdist


def check_contents(wheel: Path, sdist: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = [
        "bgtask/py.typed",
        "bgtask/migrations/0001_initial.py",
        "bgtask/migrations/0006_admin_indexes.py",
        "bgtask/templates/admin/bgtask/task/change_list.html",
        "bgtask/templates/admin/bgtask/task/dashboard.html",
    ]
    missing = [name for name in wanted if name not in names]
    if missing:
        sys.exit(f"{wheel.name} lacks {missing}")
    leaked = sorted({name.split("/")[0] for name in names} - {"bgtask"} - _dist_info(names))
    if leaked:
        sys.exit(f"{wheel.name} carries more than the bgtask package: {leaked}")
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    for field in (
        "License-Expression: BSD-3-Clause",
        "Classifier: Framework :: Django :: 6.0",
        "Classifier: Programming Language :: Python :: 3.13",
        "Project-URL: Changelog",
    ):
        if field not in text:
            sys.exit(f"{wheel.name}'s METADATA lacks {field!r}")
    with tarfile.open(sdist) as archive:
        members = {Path(name).name for name in archive.getnames()}
    for name in ("LICENSE", "CHANGELOG.md", "py.typed", "pyproject.toml"):
        if name not in members:
            sys.exit(f"{sdist.name} lacks {name}")
    print(f"contents: {wheel.name} ({len(names)} files), {sdist.name}: ok")


def _dist_info(names: set[str]) -> set[str]:
    return {name.split("/")[0] for name in names if ".dist-info/" in name}


def demo(wheel: Path, python: str, workdir: Path, duration: float) -> None:
    venv = workdir / "venv"
    run([python, "-m", "venv", str(venv)])
    pip = [str(venv / "bin" / "python"), "-m", "pip", "-q", "--disable-pip-version-check"]
    run([*pip, "install", str(wheel)])
    site = workdir / "site"
    (site / "handlers").mkdir(parents=True)
    (site / "handlers" / "__init__.py").write_text("")
    shutil.copytree(
        ROOT / "handlers" / "demo",
        site / "handlers" / "demo",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (site / "wheel_check_settings.py").write_text(SETTINGS)
    # Only the temp dir is on the path: no PYTHONPATH, no checkout, cwd outside the repository.
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")},
        "DJANGO_SETTINGS_MODULE": "wheel_check_settings",
        "PYTHONPATH": str(site),
    }
    python_in_venv = str(venv / "bin" / "python")
    run([python_in_venv, "-c", PROBE], cwd=site, env=env)
    out = run(
        [python_in_venv, "-m", "django", "bgtask_demo", "--duration", str(duration)],
        cwd=site,
        env=env,
        stdout=subprocess.PIPE,
    ).stdout
    print(out)
    # The demo's flaky task fails once, then succeeds on its retry (6 s later).
    for expected in ("demo.greet  succeeded", "demo.add    succeeded", "demo.flaky  succeeded"):
        if expected not in out:
            sys.exit(f"the demo run from the wheel did not print {expected!r}")
    print("demo from the installed wheel: ok")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="interpreter of the fresh venv")
    parser.add_argument("--dist", type=Path, default=ROOT / "build" / "dist")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (printed)")
    args = parser.parse_args()
    wheel, sdist = build(args.dist)
    check_contents(wheel, sdist)
    workdir = Path(tempfile.mkdtemp(prefix="bgtask-wheel-check-"))
    try:
        demo(wheel, args.python, workdir, args.duration)
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
