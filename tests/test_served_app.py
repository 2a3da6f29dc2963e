"""The sandbox project as `make run` serves its HTTP (real gunicorn): the admin's and the API
docs' static files come from the same server (WhiteNoise), so /admin/ is styled and the docs
work offline."""

import urllib.request

import pytest

from tests.livekit import Gunicorn


@pytest.fixture(scope="module")
def server():
    [gunicorn] = Gunicorn.start()
    yield gunicorn
    gunicorn.terminate()


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
