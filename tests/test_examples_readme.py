"""The examples' READMEs, verbatim, against the sandbox served as `make run` serves its HTTP (real
granian, the sandbox settings with DEBUG on, the example addons installed). Each README's `sh`
block runs in bash with `set -euo pipefail`; the only substitutions are the server's address
(a free port instead of 8000) and this interpreter for `.venv/bin/python`. The `TOKEN` comes
from the main README's steps (a superuser with an organization and a token)."""

import os
import re
import subprocess
import sys

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from metacore.kernel import get_kernel
from tests.livekit import ROOT, Web
from tests.livekit import test_database_url as database_url

pytestmark = pytest.mark.django_db(transaction=True)


def sh_block(readme):
    [block] = re.findall(r"```sh\n(.*?)```", readme.read_text(), re.S)
    return block


@pytest.fixture
def served(monkeypatch):
    """`make run`: migrate (the test database), metacore_install_examples, `make web`; then the
    main README's user, organization and token."""
    call_command("metacore_install_examples")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a-long-enough-password")
    call_command("createsuperuser", "--noinput", "--username", "admin", "--email", "admin@example.com")
    call_command("metacore_member", "admin")
    token = Token.objects.create(user=get_user_model().objects.get(username="admin")).key
    [server] = Web.start()
    yield server, token
    server.terminate()
    for key in ("helpdesk", "tasks"):
        get_kernel().installer.uninstall(key, drop_data=True)


def run_readme(name, served):
    server, token = served
    script = sh_block(ROOT / "examples" / name / "README.md")
    script = script.replace("http://127.0.0.1:8000", server.url).replace(".venv/bin/python", sys.executable)
    env = {
        **os.environ,
        "TOKEN": token,
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "sandbox_project.settings",
    }
    result = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr + server.output()
    return result.stdout


def test_tasks_readme(served):
    out = run_readme("tasks", served)
    assert '"title":"Write the docs"' in out and '"status":"todo"' in out


def test_helpdesk_readme(served):
    out = run_readme("helpdesk", served)
    assert '"status":"resolved"' in out and '"resolution":"rebooted"' in out
    assert '"rows": [' in out  # metacore_call's summary
