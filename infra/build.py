"""Build one Lambda function's code folder: what ``sam build`` runs (template.yaml's
``BuildMethod: makefile`` calls ``make build-WorkerFunction`` and friends, which call this), and
what ``make lambda-measure`` builds and times here.

    python infra/build.py --function worker --out .aws-sam/build/WorkerFunction
    python infra/build.py --function worker --out build/lambda/worker --arch host

It installs infra/requirements-lambda.lock (pinned with hashes, binary wheels for the function's
architecture; ``make lock`` makes it from pyproject.toml's ``lambda`` extra), refuses a compiled
module built for another architecture, copies
``bgtask/`` and ``handlers/`` (never tests, benchmarks or docs), prunes what the function never
loads (other languages' translations, GeoDjango, the admin for the worker), collects the admin's
static files into the web function (``collectstatic``: hashed names and gzip copies, served by
WhiteNoise) and compiles everything to bytecode: Lambda's code folder is read-only, so without
shipped bytecode every cold start compiles every module again. The bytecode is checked by hash,
not by timestamp, because the zip Lambda unpacks does not keep the source files' timestamps
exactly.
"""

from __future__ import annotations

import argparse
import compileall
import importlib.util
import os
import py_compile
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REQUIREMENTS = REPO / "infra" / "requirements-lambda.lock"
RUNTIME_PYTHON = (3, 12)  # template.yaml: Runtime python3.12
PLATFORMS = {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}
FUNCTIONS = ("worker", "web", "manage")
# Project code each function ships (paths under the repository).
PROJECT_CODE = ("bgtask", "handlers")
PROJECT_SKIP = ("__pycache__", "*.pyc", "invoke_local.py")
# Paths (under the code folder) no function loads.
PRUNE_ALL = (
    "django/contrib/gis",  # GeoDjango: not installed
    "django/contrib/postgres/locale",
    "bin",  # console scripts of the installed packages
)
# Paths only the web function (the admin, through Mangum) or manage (migrate, check) loads.
PRUNE_WORKER = (
    "mangum",
    "whitenoise",
    "django/contrib/admin",
    "django/contrib/admindocs",
    "django/contrib/flatpages",
    "django/contrib/redirects",
    "django/contrib/sitemaps",
    "django/contrib/sites",
    "django/contrib/syndication",
    "django/contrib/humanize",
    "bgtask/templates",
)
PRUNE = {
    "worker": PRUNE_ALL + PRUNE_WORKER,
    "web": PRUNE_ALL,
    "manage": (*PRUNE_ALL, "mangum", "whitenoise"),
}
# Only the web function serves the admin's static files (handlers/project/settings.py: STATIC_ROOT
# is the code folder's staticfiles/).
COLLECT_STATIC = {"web"}
COLLECT_STATIC_CODE = """
import sys
sys.path.insert(0, sys.argv[1])
import django
from django.core.management import call_command
django.setup()
call_command("collectstatic", "--no-input", verbosity=0)
"""
KEEP_LANGUAGES = {"en"}  # LANGUAGE_CODE is en-us; other translations are never loaded


def install_requirements(out: Path, arch: str) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",  # compiled below, once, by hash
        "--only-binary=:all:",
        "--require-hashes",  # exactly the locked files, nothing resolved anew
        "--no-deps",  # the lock lists every dependency already
        "--target",
        str(out),
        "--requirement",
        str(REQUIREMENTS),
    ]
    if arch != "host":
        command += [
            "--platform",
            PLATFORMS[arch],
            "--implementation",
            "cp",
            "--python-version",
            ".".join(map(str, RUNTIME_PYTHON)),
        ]
    subprocess.run(command, check=True)


# ELF e_machine of each architecture (the two bytes at offset 18 of an ELF file, little-endian).
ELF_MACHINES = {"arm64": 183, "x86_64": 62}
COMPILED_SUFFIXES = (".so",)


def elf_machine(path: Path) -> int | None:
    """The ELF machine a compiled module was built for; None if it is not an ELF file."""
    with path.open("rb") as file:
        header = file.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    return int.from_bytes(header[18:20], "little")


def wrong_architecture(out: Path, arch: str) -> list[str]:
    """The compiled modules under ``out`` not built for ``arch`` (relative paths, sorted).

    A wheel for the wrong architecture installs without complaint and fails only when Lambda
    imports it (``invalid ELF header``), so the build looks at every compiled file instead."""
    wanted = ELF_MACHINES.get(arch)
    if wanted is None:  # "host": whatever this machine runs is right
        return []
    return sorted(
        str(path.relative_to(out))
        for path in out.rglob("*")
        if path.is_file()
        and (path.suffix in COMPILED_SUFFIXES or ".so." in path.name)
        and elf_machine(path) not in (wanted, None)
    )


def check_architecture(out: Path, arch: str) -> None:
    wrong = wrong_architecture(out, arch)
    if wrong:
        raise SystemExit(
            f"{len(wrong)} compiled module(s) in {out} are not built for {arch}, the functions' "
            f"architecture (template.yaml: Architectures): {', '.join(wrong[:10])}. A wheel for "
            "another platform slipped into the lock or the folder; run make lock again."
        )


def copy_project(out: Path) -> None:
    for name in PROJECT_CODE:
        shutil.copytree(
            REPO / name,
            out / name,
            ignore=shutil.ignore_patterns(*PROJECT_SKIP),
            dirs_exist_ok=True,
        )


def prune(out: Path, function: str) -> None:
    for relative in PRUNE[function]:
        path = out / relative
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    for locale in list(out.rglob("locale")):
        if not locale.is_dir():
            continue
        for language in locale.iterdir():
            if language.is_dir() and language.name not in KEEP_LANGUAGES:
                # django/conf/locale/<lang>/ also holds formats.py; unused without the language.
                shutil.rmtree(language)
    for cache in list(out.rglob("__pycache__")):
        shutil.rmtree(cache)
    for pattern in ("*.pyc", "*.pyi", "py.typed"):
        for path in out.rglob(pattern):
            path.unlink()


def collect_static(out: Path) -> None:
    """The admin's CSS, JavaScript and icons into ``out/staticfiles``, with hashed names and
    gzip copies (WhiteNoise's storage), run from the code folder alone (``-I -S``): what ships is
    what is collected. Only pure-Python packages are imported, so an arm64 folder works here."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DJANGO_SETTINGS_MODULE": "handlers.project.settings",
        "DJANGO_STATIC_HASHED": "1",
        "DJANGO_STATIC_ROOT": str(out / "staticfiles"),
        "DATABASE_URL": "sqlite:///:memory:",  # never opened: collectstatic needs no database
    }
    subprocess.run(
        [sys.executable, "-I", "-S", "-c", COLLECT_STATIC_CODE, str(out)], env=env, check=True
    )


# The optimisation level the runtime imports at: Lambda starts python without -O and without
# PYTHONOPTIMIZE, so it reads name.cpython-312.pyc, never .opt-1/.opt-2.pyc. Compiled for that
# level whatever level this build runs at (a build under `python -O` would otherwise ship only
# .opt-1.pyc files, which the runtime ignores: it would compile every module on every cold start,
# in memory, since the code folder is read-only).
RUNTIME_OPTIMIZE = 0


def missing_bytecode(out: Path) -> list[str]:
    """The modules under ``out`` without the bytecode file the runtime reads (relative paths)."""
    return sorted(
        str(path.relative_to(out))
        for path in out.rglob("*.py")
        if not Path(importlib.util.cache_from_source(str(path), optimization="")).is_file()
    )


def compile_bytecode(out: Path) -> None:
    ok = compileall.compile_dir(
        out,
        quiet=1,
        workers=0,
        optimize=RUNTIME_OPTIMIZE,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    missing = missing_bytecode(out)
    if not ok or missing:
        raise SystemExit(
            f"compileall failed in {out}: {len(missing)} module(s) without bytecode "
            f"({', '.join(missing[:10])})"
        )


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def build(function: str, out: Path, arch: str) -> int:
    """Build ``function`` into ``out``; return its size in bytes (unzipped)."""
    if sys.version_info[:2] != RUNTIME_PYTHON:
        raise SystemExit(
            f"Build with Python {'.'.join(map(str, RUNTIME_PYTHON))} (the functions' runtime): "
            f"bytecode from Python {sys.version_info[0]}.{sys.version_info[1]} would not load."
        )
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    install_requirements(out, arch)
    check_architecture(out, arch)
    copy_project(out)
    prune(out, function)
    if function in COLLECT_STATIC:
        collect_static(out)
    compile_bytecode(out)
    return folder_size(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--function", choices=FUNCTIONS, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--arch",
        choices=(*PLATFORMS, "host"),
        default="arm64",
        help="wheels for this Lambda architecture (template.yaml: arm64), or this machine's",
    )
    args = parser.parse_args()
    size = build(args.function, args.out.resolve(), args.arch)
    print(f"{args.function}: {args.out} ({size / 1e6:.1f} MB unzipped, {args.arch})")


if __name__ == "__main__":
    main()
