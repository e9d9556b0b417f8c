"""infra/requirements-lambda.lock agrees with pyproject.toml's ``lambda`` extra: every requirement
is pinned to a version it allows, with hashes, and nothing is pinned that no requirement brings.
(Offline; ``make lock-check`` resolves again against PyPI in CI.)"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.vendor_independent

LOCK = REPO_ROOT / "infra" / "requirements-lambda.lock"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def _project() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]


def _requirements() -> list[Requirement]:
    project = _project()
    return [
        Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["lambda"]
    ]


def _pins() -> dict[str, tuple[str, int, set[str]]]:
    """name -> (version, number of hashes, what brings it: "pyproject" or other pins' names)."""
    pins: dict[str, tuple[str, int, set[str]]] = {}
    current = None
    for line in LOCK.read_text().splitlines():
        match = PIN.match(line)
        if match:
            current = canonicalize_name(match.group(1))
            pins[current] = (match.group(2), 0, set())
        elif current and "--hash=sha256:" in line:
            version, hashes, via = pins[current]
            pins[current] = (version, hashes + 1, via)
        elif current and line.lstrip().startswith("#"):
            text = line.strip("# ").removeprefix("via").strip()
            if text:
                pins[current][2].add(
                    "pyproject" if "pyproject.toml" in text else canonicalize_name(text)
                )
    return pins


def _extra_packages(requirement: Requirement) -> set[str]:
    """The packages an extra such as psycopg[binary] adds (from the installed distribution)."""
    names = set()
    for text in metadata.requires(requirement.name) or []:
        extra_requirement = Requirement(text)
        marker = extra_requirement.marker
        if marker and any(marker.evaluate({"extra": extra}) for extra in requirement.extras):
            names.add(canonicalize_name(extra_requirement.name))
    return names


def test_every_requirement_of_the_lambda_extra_is_pinned_to_a_version_it_allows():
    pins = _pins()
    assert pins, f"{LOCK} pins nothing"
    for requirement in _requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in the lock: run make lock"
        version = pins[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"the lock pins {name}=={version}, which {requirement} does not allow: run make lock"
        )
        for extra_package in _extra_packages(requirement):
            assert extra_package in pins, f"{requirement} needs {extra_package}: run make lock"


def test_every_pin_has_hashes_and_comes_from_a_requirement():
    pins = _pins()
    assert all(hashes for _, hashes, _ in pins.values()), "a pin without --hash: run make lock"
    # Each pin is a requirement of the extra, or a dependency of another pin.
    for name, (_, _, via) in pins.items():
        assert via, f"{name} says nothing of what needs it"
        assert via <= {"pyproject", *pins}, f"{name} is needed by {via}, which the lock lacks"
    assert "make lock" in LOCK.read_text().splitlines()[1]
