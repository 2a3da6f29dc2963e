"""docs/embedding.md, verbatim, on a brand-new `django-admin startproject myproject`: its
settings, URL and ASGI blocks are applied as written (so the guide cannot drift), then
`check`, `migrate`, `metacore_install`, and the README's requests (token auth, a list,
/api/schema/) against the project's HTTP served by the guide's production command (*Serving*:
granian's WSGI workers). Everything runs in subprocesses of this venv's Python on the new
project's own SQLite file."""

import json
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.livekit import free_port

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "embedding.md"
BLOCK = re.compile(
    r"```python\n# (settings\.py|urls\.py|asgi\.py|notes/models\.py|notes/apps\.py)\n(.*?)```", re.S
)
BIN = Path(sys.executable).parent
WEB = re.compile(r"^\| web \| `([^`]*)` \|", re.M)


def blocks(path):
    """[(file, code)] of the python blocks that start with `# <file>`, in order."""
    return BLOCK.findall(path.read_text())


def test_readme_shows_the_guides_blocks_unchanged():
    readme = blocks(ROOT / "README.md")
    assert {name for name, _ in readme} == {"settings.py", "urls.py", "asgi.py", "notes/apps.py"}
    assert all(block in blocks(GUIDE) for block in readme)


def web_command(port):
    """The guide's `web` process (*Serving*) with two workers, on `port`, from this venv."""
    [command] = WEB.findall(GUIDE.read_text())
    program, *args = shlex.split(command.replace("<cores>", "2"))
    return [str(BIN / program), *args, "--port", str(port)]


def run(project, *args, env, check=True):
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def get(url, token=None):
    request = urllib.request.Request(url, headers={"Authorization": f"Token {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def send(url, token, body):
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A startproject site with the guide applied, migrated, the tasks example installed and
    an admin with an organization and a token."""
    root = tmp_path_factory.mktemp("host")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "PYTHONPATH")
    }
    env["DJANGO_SUPERUSER_PASSWORD"] = "a-long-enough-password"
    subprocess.run([str(BIN / "django-admin"), "startproject", "myproject", str(root)], check=True, env=env)
    run(root, "startapp", "notes", env=env)
    for name, code in blocks(GUIDE):
        if name.startswith("notes/"):  # the guide's host app files, as written
            (root / name).write_text(code)
            continue
        with open(root / "myproject" / name, "a") as target:
            target.write("\n" + code)
    return root, env


def test_the_guide_verbatim_checks_migrates_installs_and_serves(project):
    root, env = project
    checked = run(root, "check", env=env)
    assert "System check identified no issues" in checked.stdout, checked.stdout + checked.stderr
    run(root, "makemigrations", "notes", env=env)
    run(root, "migrate", "--noinput", env=env)
    installed = run(root, "metacore_install", str(ROOT / "examples" / "tasks"), env=env)
    assert "tasks" in installed.stdout
    run(root, "createsuperuser", "--noinput", "--username", "admin", "--email", "admin@example.com", env=env)
    run(root, "metacore_member", "admin", env=env)
    token = run(root, "drf_create_token", "admin", env=env).stdout.split()[2]  # README: awk '{print $3}'
    assert (root / "db.sqlite3").is_file()

    port = free_port()
    log = open(root / "web.log", "w+")
    server = subprocess.Popen(
        web_command(port),
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None and time.monotonic() < deadline, log.seek(0) or log.read()
            try:
                assert get(f"{base}/schema/")[0] == 401  # anonymous: the API's authentication applies
                break
            except urllib.error.URLError:
                time.sleep(0.2)
        status, body = get(f"{base}/dynamic/tasks.projects", token)
        assert status == 200, body
        listing = json.loads(body)
        assert listing["success"] is True and listing["data"] == [] and listing["meta"]["total"] == 0
        status, body = get(f"{base}/schema/", token)
        assert status == 200 and b"/api/dynamic/tasks.projects" in body and b"title: metacore API" in body
        assert get(f"{base}/dynamic/tasks.projects")[0] == 401
        assert get(f"{base}/dynamic/tasks.projects", "not-a-token")[0] == 401
        # The guide's host model: its own migration, served like an addon's table.
        status, body = send(f"{base}/dynamic/notes", token, {"title": "Hello", "body": "from the host"})
        assert status == 201, body
        note = json.loads(body)["data"]
        assert note["organization_id"] and note["created_at"] and isinstance(note["id"], int)
        status, body = get(f"{base}/dynamic/host.notes?search=host", token)
        assert status == 200 and [n["title"] for n in json.loads(body)["data"]] == ["Hello"]
        assert json.loads(get(f"{base}/metadata/table/notes", token)[1])["data"]["searchColumns"] == [
            "title",
            "body",
        ]
    finally:
        server.terminate()
        server.wait(timeout=20)  # a worker still stopping after 10 s is killed (--workers-kill-timeout)
        log.close()


@pytest.mark.parametrize(
    "change,expected",
    [
        ('INSTALLED_APPS.remove("daphne"); INSTALLED_APPS.append("daphne")', "daphne.E001"),
        (
            'REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"] = '
            '["rest_framework.authentication.SessionAuthentication"]',
            "metacore.W002",
        ),
        (
            'REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"] = "rest_framework.schemas.openapi.AutoSchema"',
            "metacore.E007",
        ),
        ('INSTALLED_APPS.remove("drf_spectacular_sidecar")', "metacore.W003"),
    ],
)
def test_check_catches_what_breaks_silently(project, change, expected):
    """The mistakes of the first guide: each one named by `manage.py check`."""
    root, env = project
    settings = root / "myproject" / "settings.py"
    original = settings.read_text()
    try:
        settings.write_text(original + "\n" + change + "\n")
        result = run(root, "check", env=env, check=False)
        assert expected in result.stdout + result.stderr
    finally:
        settings.write_text(original)
