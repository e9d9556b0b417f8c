"""The admin on Lambda is styled: a warm web "container" (the deployed settings: on Lambda, static
files collected with hashed names as infra/build.py does) is driven with API Gateway HTTP API
(payload 2.0) events through ``handlers.web.handler``. It logs in with CSRF, opens the dashboard
and fetches every static URL the page references, and every URL those stylesheets reference:
each is a 200, compressed on request and cached for long. The deployed settings pass
``check --deploy``; a trusted origin from the environment lets a custom domain log in."""

from __future__ import annotations

import base64
import gzip
import re
from urllib.parse import urlencode, urljoin

import pytest

from tests.conftest import run_python
from tests.serverless_faults.conftest import SECRET_KEY, direct_database_url
from tests.serverless_faults.http_events import HOST, request_event

pytestmark = pytest.mark.django_db(transaction=True)

DASHBOARD = "/admin/bgtask/task/dashboard/"
PASSWORD = "admin-Pass-for-static-test"
TRUSTED_ORIGIN = "https://tasks.example.com"
STATIC_REFERENCE = re.compile(r'(?:href|src)="(/static/[^"]+)"')
CSS_REFERENCE = re.compile(r"url\(\s*['\"]?([^'\")]+)['\"]?\s*\)")


@pytest.fixture
def deployed_web(tmp_path, start_container):
    """A web container with the deployed settings, its static files collected beforehand."""
    env = {
        "AWS_LAMBDA_FUNCTION_NAME": "bgtask-test-web",  # the settings as deployed
        "DJANGO_SECRET_KEY": SECRET_KEY + "-long-enough-for-check-deploy",
        "DATABASE_URL": direct_database_url(),
        "DJANGO_STATIC_ROOT": str(tmp_path / "staticfiles"),
        "DJANGO_ALLOWED_HOSTS": f"{HOST},tasks.example.com",
        "DJANGO_CSRF_TRUSTED_ORIGINS": TRUSTED_ORIGIN,
    }
    collected = run_python(
        "import django; from django.core.management import call_command; django.setup(); "
        "call_command('collectstatic', '--no-input', verbosity=0)",
        DJANGO_SETTINGS_MODULE="tests.serverless_faults.project_settings",
        **env,
    )
    assert collected.returncode == 0, collected.stderr
    return env, start_container(**env)


def _create_admin(container) -> None:
    # Through the manage function, so the password is hashed as the deployed settings hash it.
    created = container.invoke(
        "manage",
        {
            "command": "createsuperuser",
            "args": ["--username", "admin", "--email", "admin@example.com"],
            "password": PASSWORD,
        },
    )
    assert created["ok"], created


def _cookies(answer: dict, jar: dict[str, str]) -> dict[str, str]:
    for cookie in answer.get("cookies", []):
        name, value = cookie.split(";", 1)[0].split("=", 1)
        jar[name] = value
    return jar


def _get(container, path: str, jar: dict[str, str], **headers: str) -> dict:
    event = request_event(
        "GET", path, headers=headers, cookies=[f"{k}={v}" for k, v in jar.items()]
    )
    result = container.invoke("web", event)
    assert result["ok"], result
    _cookies(result["answer"], jar)
    return result["answer"]


def _log_in(container, origin: str) -> tuple[dict, dict[str, str]]:
    jar: dict[str, str] = {}
    page = _get(container, "/admin/login/", jar)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page["body"]).group(1)
    body = urlencode(
        {"username": "admin", "password": PASSWORD, "csrfmiddlewaretoken": token, "next": DASHBOARD}
    )
    event = request_event(
        "POST",
        "/admin/login/",
        headers={"content-type": "application/x-www-form-urlencoded", "origin": origin},
        cookies=[f"{k}={v}" for k, v in jar.items()],
        body=body,
    )
    result = container.invoke("web", event)
    assert result["ok"], result
    return result["answer"], _cookies(result["answer"], jar)


def _body_bytes(answer: dict) -> bytes:
    body = answer["body"]
    return base64.b64decode(body) if answer.get("isBase64Encoded") else body.encode()


def test_the_dashboard_and_every_static_file_it_references_are_served(deployed_web):
    _, container = deployed_web
    _create_admin(container)

    login, jar = _log_in(container, f"https://{HOST}")
    assert login["statusCode"] == 302, login["body"][:300]
    assert login["headers"]["location"] == DASHBOARD
    assert "sessionid" in jar
    dashboard = _get(container, DASHBOARD, jar)
    assert dashboard["statusCode"] == 200
    assert "Task queue dashboard" in dashboard["body"]
    # The deployed security headers.
    assert dashboard["headers"]["x-frame-options"] == "DENY"
    assert "script-src 'self'" in dashboard["headers"]["content-security-policy"]
    assert dashboard["headers"]["strict-transport-security"].startswith("max-age=31536000")

    # Every static URL of the page, then every url() of the stylesheets, breadth first.
    pending = sorted(set(STATIC_REFERENCE.findall(dashboard["body"])))
    assert any(url.endswith(".css") for url in pending) and any(
        url.endswith(".js") for url in pending
    )
    fetched: dict[str, dict] = {}
    while pending:
        url = pending.pop()
        if url in fetched:
            continue
        answer = _get(container, url, {}, **{"accept-encoding": "gzip"})
        fetched[url] = answer
        assert answer["statusCode"] == 200, url
        if url.endswith(".css"):
            text = _body_bytes(answer)
            if answer["headers"].get("content-encoding") == "gzip":
                text = gzip.decompress(text)
            for reference in CSS_REFERENCE.findall(text.decode()):
                if not reference.startswith(("data:", "#", "http")):
                    pending.append(urljoin(url, reference).split("#")[0].split("?")[0])
    assert [url for url, answer in fetched.items() if answer["statusCode"] != 200] == []
    # Django 6's admin pages reference 20 or more static files, Django 5.2's 17.
    assert len(fetched) >= 15, sorted(fetched)
    assert any(url.endswith(".svg") for url in fetched)
    # Hashed names, cached for long; compressed when the client takes gzip.
    for url, answer in fetched.items():
        assert re.search(r"\.[0-9a-f]{12}\.", url), f"{url} is not a hashed name"
        assert "immutable" in answer["headers"]["cache-control"], url
    css = [a for u, a in fetched.items() if u.endswith(".css")]
    assert all(a["headers"].get("content-encoding") == "gzip" for a in css)


def test_a_trusted_origin_from_the_environment_may_log_in_and_another_may_not(deployed_web):
    _, container = deployed_web
    _create_admin(container)

    trusted, _ = _log_in(container, TRUSTED_ORIGIN)
    assert trusted["statusCode"] == 302, trusted["body"][:300]
    untrusted, _ = _log_in(container, "https://elsewhere.example.net")
    assert untrusted["statusCode"] == 403
    assert "CSRF verification failed" in untrusted["body"]


def test_the_deployed_settings_pass_check_deploy_without_a_warning(deployed_web):
    env, _ = deployed_web
    checked = run_python(
        "import django; from django.core.management import call_command; django.setup(); "
        "call_command('check', '--deploy', '--fail-level', 'WARNING')",
        DJANGO_SETTINGS_MODULE="handlers.project.settings",
        **env,
    )
    assert checked.returncode == 0, checked.stderr
    assert "no issues" in checked.stdout, checked.stdout
