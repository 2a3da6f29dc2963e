"""The sandbox project as `make run` serves its HTTP (real granian workers): the admin's and the API
docs' static files come from the same server (WhiteNoise), so /admin/ is styled and the docs
work offline."""

import subprocess
import sys
import urllib.request

import pytest

from tests.livekit import ROOT, Web


@pytest.fixture(scope="module")
def server():
    [web] = Web.start()
    yield web
    web.terminate()


@pytest.mark.parametrize(
    "path",
    [
        "/static/admin/css/base.css",
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js",
        "/static/drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js",
    ],
)
def test_static_files_answer_200(server, path):
    with urllib.request.urlopen(server.url + path, timeout=10) as response:
        assert response.status == 200 and len(response.read()) > 1000
        assert response.headers["Content-Type"].startswith(
            ("text/css", "text/javascript", "application/javascript")
        )


def test_admin_login_page_links_its_stylesheet(server):
    with urllib.request.urlopen(server.url + "/admin/login/", timeout=10) as response:
        assert response.status == 200 and "/static/admin/css/base.css" in response.read().decode()


@pytest.mark.parametrize("entry, expected", [("wsgi", "600"), ("asgi", "0")])
def test_persistent_connections_for_wsgi_workers_only(entry, expected):
    """The settings give the HTTP workers persistent connections; the ASGI application (the
    hub's Daphne) turns them off, as Django advises, since its requests' threads come and go
    and each would keep a connection open (a busy hub ran out of PostgreSQL's slots)."""
    code = (
        "import os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'sandbox_project.settings')\n"
        f"from sandbox_project.{entry} import application\n"
        "from django.db import connections\n"
        "print(connections['default'].settings_dict['CONN_MAX_AGE'])"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == expected
