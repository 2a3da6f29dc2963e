"""Secret settings are write-only: stored encrypted, answered as a mask by the REST API, the
admin, commands, audit and logs, and readable only by the addon itself through `env_get`.
Installation listings show settings only to users who may manage addons."""

import json
import uuid

import pytest
import sandbox_guests as guests
from django.core.management import call_command
from store_support import ORG_A, ORG_B, client_for, make_user

from metacore.context import CallContext
from metacore.installer.secrets import MASK
from metacore.kernel import get_kernel
from metacore.models import AuditRecord, Installation, InstallJournal

pytestmark = pytest.mark.django_db(transaction=True)

STRIPE_KEY = "sk_live_" + uuid.uuid4().hex  # what must never come back out
TOKEN = "tok-" + uuid.uuid4().hex
SETTINGS = [
    {
        "key": "stripe_secret_key",
        "type": "secret",
        "label": "Secret Key",
    },  # upstream v3 spelling (stripe fixture)
    {"key": "api_token", "type": "string", "secret": True},  # flat spelling
    {"key": "greeting", "type": "string", "default": "hello"},
]


@pytest.fixture
def payments(tmp_path):
    """An addon whose guest exports `call_env_get`, installed with two secrets."""
    guests.install_probe_addon(
        tmp_path,
        "payments",
        settings=SETTINGS,
        install_settings={"stripe_secret_key": STRIPE_KEY, "api_token": TOKEN},
    )
    yield
    get_kernel().installer.uninstall("payments", drop_data=True)


def env_get(key):
    raw = get_kernel().sandbox.call_raw(
        "payments", "call_env_get", key.encode(), CallContext(tenant=str(ORG_A))
    )
    return raw.decode() if raw else None


def leaked(text):
    return STRIPE_KEY in text or TOKEN in text or STRIPE_KEY[8:] in text


def test_stored_encrypted_and_readable_only_by_the_addon(payments):
    stored = Installation.objects.get(key="payments").settings
    assert not leaked(json.dumps(stored))
    assert set(stored["stripe_secret_key"]) == {"$sealed"} and stored["greeting"] == "hello"
    assert env_get("stripe_secret_key") == STRIPE_KEY
    assert env_get("api_token") == TOKEN
    assert env_get("greeting") == "hello"


def test_listings_mask_secrets_and_show_settings_only_to_managers(payments):
    admin = client_for(make_user("root", superuser=True))
    outsider = client_for(make_user("mallory", ORG_B))  # another organization, no permissions
    loner = client_for(make_user("loner"))  # no organization at all
    for client in (admin, outsider, loner):
        for url in ("/api/metacore/installations", "/api/metacore/installations/"):
            response = client.get(url)
            assert response.status_code == 200 and not leaked(response.content.decode())
    (row,) = [r for r in admin.get("/api/metacore/installations").json() if r["key"] == "payments"]
    assert row["settings"] == {"stripe_secret_key": MASK, "api_token": MASK, "greeting": "hello"}
    for client in (outsider, loner):
        (row,) = [r for r in client.get("/api/metacore/installations").json() if r["key"] == "payments"]
        assert "settings" not in row and "credential_keys" not in row and "capabilities" not in row
        assert row["version"] == "1.0.0" and row["status"] == "enabled"


def test_settings_endpoint_keeps_a_masked_secret_and_seals_a_new_one(payments, caplog):
    admin = client_for(make_user("root", superuser=True))
    url = "/api/metacore/installations/payments/settings"
    with caplog.at_level("DEBUG"):
        response = admin.post(
            url, {"stripe_secret_key": MASK, "api_token": "tok-new", "greeting": "hi"}, format="json"
        )
    assert (
        response.status_code == 200
        and not leaked(response.content.decode())
        and "tok-new" not in response.content.decode()
    )
    assert response.json()["settings"] == {"stripe_secret_key": MASK, "api_token": MASK, "greeting": "hi"}
    assert env_get("stripe_secret_key") == STRIPE_KEY and env_get("api_token") == "tok-new"
    assert not leaked(caplog.text) and "tok-new" not in caplog.text
    audit = json.dumps(list(AuditRecord.objects.values("target", "reason", "details")), default=str)
    journal = json.dumps(list(InstallJournal.objects.values("message", "details")), default=str)
    assert not leaked(audit) and "tok-new" not in audit and not leaked(journal)


def test_a_client_cannot_plant_stored_ciphertext(payments):
    stored = Installation.objects.get(key="payments").settings["stripe_secret_key"]
    admin = client_for(make_user("root", superuser=True))
    response = admin.post(
        "/api/metacore/installations/payments/settings",
        {"api_token": MASK, "greeting": stored},
        format="json",
    )  # another key's ciphertext
    assert (
        response.status_code == 400 and "greeting" in response.json()["errors"]
    )  # a string setting, not an object
    assert env_get("greeting") != json.dumps(stored)  # nothing was planted
    assert env_get("api_token") == TOKEN


def test_commands_and_admin_never_show_a_secret(payments, capsys, client):
    call_command("metacore_list", "--json")
    call_command("metacore_list")
    assert not leaked(capsys.readouterr().out)
    root = make_user("root", superuser=True)
    client.force_login(root)
    page = client.get(f"/admin/metacore/installation/{Installation.objects.get(key='payments').pk}/change/")
    assert page.status_code == 200 and not leaked(page.content.decode())
    assert "(set)" in page.content.decode()  # the console says a secret is set, never what it is


def test_plaintext_secrets_stored_before_are_encrypted_by_the_migration(payments):
    Installation.objects.filter(key="payments").update(
        settings={"stripe_secret_key": STRIPE_KEY, "api_token": TOKEN, "greeting": "hello"}
    )
    call_command("migrate", "metacore", "0002", verbosity=0)
    call_command("migrate", "metacore", verbosity=0)
    stored = Installation.objects.get(key="payments").settings
    assert not leaked(json.dumps(stored)) and stored["greeting"] == "hello"
    assert env_get("stripe_secret_key") == STRIPE_KEY and env_get("api_token") == TOKEN


def test_the_stripe_fixture_secret_is_masked(sdk_fixtures, tmp_path):
    bundle = sdk_fixtures / "manifests" / "stripe"
    admin = client_for(make_user("root", superuser=True))
    result = get_kernel().installer.install(bundle, settings={"stripe_secret_key": STRIPE_KEY})
    try:
        stored = Installation.objects.get(key=result.installation.key).settings
        assert not leaked(json.dumps(stored))
        outsider = client_for(make_user("mallory", ORG_B))
        for client in (admin, outsider):
            assert not leaked(client.get("/api/metacore/installations").content.decode())
        (row,) = [
            r for r in admin.get("/api/metacore/installations").json() if r["key"] == result.installation.key
        ]
        assert row["settings"]["stripe_secret_key"] == MASK
    finally:
        get_kernel().installer.uninstall(result.installation.key, drop_data=True)
