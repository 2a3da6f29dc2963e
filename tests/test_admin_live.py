"""The admin on a real Daphne server: an admin write reaches the audit trail and a subscribed
WebSocket as a DATA_EVENT, an addon installed while the server runs shows on the next page
load, and a headless Chromium (Playwright) logs in, filters, edits a row and sees it."""

import asyncio
import http.cookiejar
import json
import os
import re
import shutil
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from livekit import Daphne
from rest_framework.authtoken.models import Token
from store_support import ORG_A, ORG_B, make_user
from websockets.asyncio.client import connect as ws_connect

from metacore.context import CallContext
from metacore.kernel import get_kernel
from metacore.models import AuditRecord

ROOT = Path(__file__).resolve().parent.parent
TASKS = ROOT / "examples" / "tasks"
SHOP = Path(__file__).parent / "data" / "store_shop"
PERMS = [f"tasks.{t}.{v}" for t in ("projects", "tasks") for v in ("read", "create", "update", "delete")]
PASSWORD = "admin-live-pw"
pytestmark = pytest.mark.django_db(transaction=True)  # the server process must see every row
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        (daphne,) = Daphne.start()
    yield daphne
    daphne.terminate()


@pytest.fixture
def live(server, transactional_db):
    """tasks installed; a staff user of organization A, a superuser; projects in A and B."""
    result = get_kernel().installer.install(TASKS)
    alice = make_user("admin-alice", ORG_A, perms=PERMS)
    alice.is_staff = True
    alice.set_password(PASSWORD)
    alice.save()
    root = User.objects.create_superuser("admin-root", password=PASSWORD)
    store = get_kernel().store
    for org, names in ((ORG_A, ("Apollo", "Artemis")), (ORG_B, ("Borealis",))):
        ctx = CallContext.for_user(root, tenant=str(org))
        for i, name in enumerate(names):
            store.create(ctx, "tasks.projects", {"name": name, "archived": i == 1})
    yield {"server": server, "alice": alice, "root": root, "token": Token.objects.create(user=alice).key}
    get_kernel().installer.uninstall(result.key, drop_data=True)  # runtime tables outlive the flush


class AdminSession:
    """A logged-in browser-less admin session (cookies + CSRF) on the live server."""

    def __init__(self, base, username):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.get("/admin/login/")
        status, _ = self.post(
            "/admin/login/", {"username": username, "password": PASSWORD, "next": "/admin/"}
        )
        assert status == 200 and any(c.name == "sessionid" for c in self.jar), "login failed"

    def _csrf(self):
        return next(c.value for c in self.jar if c.name == "csrftoken")

    def get(self, path):
        with self.opener.open(self.base + path, timeout=20) as response:
            return response.status, response.read().decode()

    def post(self, path, fields):
        data = urllib.parse.urlencode({**fields, "csrfmiddlewaretoken": self._csrf()}).encode()
        request = urllib.request.Request(self.base + path, data=data, headers={"Referer": self.base + path})
        with self.opener.open(request, timeout=20) as response:
            return response.status, response.read().decode()


async def _write_and_receive(server, token, write):
    async with ws_connect(f"{server.ws_url}?token={token}") as ws:
        await ws.send(json.dumps({"type": "SUBSCRIBE", "models": ["projects"]}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "DATA_SUBSCRIBED"
        await asyncio.to_thread(write)
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if frame["type"] == "DATA_EVENT":
                return frame["payload"]


def test_admin_write_is_audited_and_published(live):
    server, alice = live["server"], live["alice"]
    session = AdminSession(server.url, alice.username)
    payload = asyncio.run(
        _write_and_receive(
            server,
            live["token"],
            lambda: session.post("/admin/addon_tasks/projects/add/", {"name": "Hermes"}),
        )
    )
    assert (
        payload["action"],
        payload["addon"],
        payload["table"],
        payload["org_id"],
        payload["actor_id"],
    ) == ("created", "tasks", "projects", str(ORG_A), str(alice.pk))
    record = AuditRecord.objects.get(kind="crud.create", target=f"tasks.projects:{payload['id']}")
    assert record.actor == str(alice.pk) and record.tenant == str(ORG_A)
    # an edit and a delete from the admin are events too
    change = f"/admin/addon_tasks/projects/{payload['id']}/change/"
    updated = asyncio.run(
        _write_and_receive(server, live["token"], lambda: session.post(change, {"name": "Hermes II"}))
    )
    assert (updated["action"], updated["id"], updated["fields"]) == ("updated", payload["id"], ["name"])
    deleted = asyncio.run(
        _write_and_receive(
            server,
            live["token"],
            lambda: session.post(f"/admin/addon_tasks/projects/{payload['id']}/delete/", {"post": "yes"}),
        )
    )
    assert deleted["action"] == "deleted"
    kinds = set(
        AuditRecord.objects.filter(target=f"tasks.projects:{payload['id']}").values_list("kind", flat=True)
    )
    assert kinds == {"crud.create", "crud.update", "crud.delete"}


def test_installing_an_addon_shows_on_the_next_page_load(live):
    session = AdminSession(live["server"].url, live["root"].username)
    assert "Store test shop" not in session.get("/admin/")[1]
    get_kernel().installer.install(SHOP)
    try:
        status, html = session.get("/admin/")
        assert "Store test shop" in html and "/admin/addon_store_shop/customers/" in html
        assert session.get("/admin/addon_store_shop/customers/")[0] == 200
    finally:
        get_kernel().installer.uninstall("store_shop", drop_data=True)
    status, html = session.get("/admin/")
    assert "Store test shop" not in html


def _chromium_or_skip():
    """Playwright's Python package and Debian's Chromium, or a skip (a failure under CI)."""
    reason = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reason = "the playwright package is not installed"
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    if reason is None and not os.path.exists(executable):
        reason = "no Chromium at /usr/bin/chromium (apt-get install -y chromium)"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"browser test required under CI: {reason}")
        pytest.skip(f"browser smoke test skipped: {reason}")
    return executable


def test_browser_smoke_login_filter_edit(live):
    executable = _chromium_or_skip()
    from playwright.sync_api import expect, sync_playwright

    base = live["server"].url
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(f"{base}/admin/login/?next=/admin/")
            page.fill("#id_username", live["alice"].username)
            page.fill("#id_password", PASSWORD)
            page.click("input[type=submit]")
            expect(page.locator("#content")).to_contain_text("Tasks")
            page.click("a[href='/admin/addon_tasks/projects/']")
            expect(page.locator("#result_list")).to_contain_text("Apollo")
            expect(page.locator("#result_list")).not_to_contain_text("Borealis")
            # the Archived filter: "No" keeps Apollo, drops Artemis
            page.locator("#changelist-filter a", has_text=re.compile("^No$")).first.click()
            expect(page.locator("#result_list")).not_to_contain_text("Artemis")
            page.locator("#result_list a", has_text="Apollo").click()
            page.fill("#id_name", "Apollo edited in the browser")
            page.click("input[name=_save]")
            expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
            expect(page.locator("#result_list")).to_contain_text("Apollo edited in the browser")
        finally:
            browser.close()
    assert AuditRecord.objects.filter(kind="crud.update", actor=str(live["alice"].pk)).exists()
