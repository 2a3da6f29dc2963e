"""Every `manage.py` line in a code block of docs/ runs as written (in order, per page) on a
host with examples/helpdesk installed (unless the page installs it), a user `alice` and a
group `agents`, from a copy of the repository's examples/ so that files the lines write stay
out of the tree."""

import re
import shlex
import shutil
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command

from metacore.kernel import get_kernel
from tests.installer_support import EXAMPLES

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"^```[a-z]*\n(.*?)^```", re.S | re.M)

pytestmark = pytest.mark.django_db


def command_lines(page: Path) -> list[str]:
    return [
        line.strip()
        for block in BLOCK.findall(page.read_text())
        for line in block.splitlines()
        if line.strip().startswith("manage.py ")
    ]


PAGES = sorted(p for p in DOCS.glob("*.md") if command_lines(p))


def test_the_pages_with_commands_are_found():
    assert {
        "commands.md",
        "permissions.md",
        "installer.md",
        "upgrades.md",
        "manifest.md",
        "bundles.md",
        "audit.md",
    } <= {p.name for p in PAGES}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_command_line_runs(page, settings, tmp_path, monkeypatch):
    settings.METACORE = {**settings.METACORE, "DATA_DIR": tmp_path / "data", "ALLOW_UNSIGNED_BUNDLES": True}
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    lines = command_lines(page)
    if not any(line.startswith("manage.py metacore_install examples/helpdesk") for line in lines):
        get_kernel().installer.install(EXAMPLES / "helpdesk")
    User.objects.create_user("alice")
    Group.objects.create(name="agents")
    for line in lines:
        argv = shlex.split(line, comments=True)[1:]
        out = StringIO()
        try:
            call_command(*argv, stdout=out, stderr=StringIO())
        except Exception as exc:  # name the line that broke
            pytest.fail(f"{page.name}: `{line}` failed: {exc}")
