"""JWT bearer tokens (djangorestframework-simplejwt, as the sandbox project configures it and
docs/embedding.md tells hosts to): sign in, call the API with `Authorization: Bearer`, refresh;
and the SDK's boot calls (`manifests`, `navigation`) answer `[]` without credentials."""

import pytest
from rest_framework.test import APIClient
from store_support import ORG_A, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def ann():
    user = make_user("ann", ORG_A, superuser=True)
    user.email = "ann@example.test"
    user.set_password("s3cret-pass")
    user.save()
    return user


def login(**body):
    return APIClient().post("/api/auth/login", body, format="json")


def test_login_bearer_refresh_me(ann):
    for credentials in ({"email": "ann@example.test"}, {"username": "ann"}, {"email": "ANN@example.test"}):
        response = login(password="s3cret-pass", **credentials)
        assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["user"]["username"] == "ann" and data["token"] and data["refresh"] and data["expires_at"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {data['token']}")
    assert client.get("/api/auth/me").json()["data"]["user"]["email"] == "ann@example.test"
    assert client.get("/api/metacore/installations").status_code == 200
    assert client.get("/api/metacore/manifests").status_code == 200
    refreshed = APIClient().post("/api/auth/refresh", {"refresh": data["refresh"]}, format="json")
    assert refreshed.status_code == 200 and refreshed.json()["data"]["token"]
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {refreshed.json()['data']['token']}")
    assert client.get("/api/auth/me").status_code == 200


@pytest.mark.parametrize(
    "body", [{"email": "ann@example.test", "password": "wrong"}, {"username": "nobody", "password": "x"}]
)
def test_bad_credentials_are_401(ann, body):
    response = login(**body)
    assert response.status_code == 401 and response.json()["success"] is False


def test_bad_requests_and_tokens(ann):
    assert login(email="ann@example.test").status_code == 400
    assert APIClient().post("/api/auth/refresh", {"refresh": "nope"}, format="json").status_code == 401
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer not.a.jwt")
    assert client.get("/api/metacore/installations").status_code == 401
    assert client.get("/api/metacore/manifests").status_code == 401  # a bad credential is still 401


def test_boot_calls_answer_empty_lists_without_credentials():
    anonymous = APIClient()
    for url in ("/api/metacore/manifests", "/api/metacore/manifests?lite=1", "/api/metacore/navigation"):
        response = anonymous.get(url)
        assert response.status_code == 200 and response.json() == [], url
    assert anonymous.get("/api/metacore/installations").status_code == 401
