"""The error contract: every metacore error class lives in its package's `errors.py`, names
its own stable machine `code` (unique across metacore, documented in docs/api.md), shadows
no Django or DRF name, and reaches clients in the JSON envelope with its status."""

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import metacore
from metacore.api.errors import envelope_exception_handler
from metacore.errors import MetacoreError
from metacore.installer.errors import BundleError
from metacore.manifest.errors import ManifestError

API_DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"
SHADOWED = {"ValidationError", "PermissionDenied", "ObjectDoesNotExist", "APIException", "ParseError"}


def error_classes():
    for module in pkgutil.walk_packages(metacore.__path__, "metacore."):
        if ".migrations" not in module.name:
            importlib.import_module(module.name)
    found, pending = [], list(MetacoreError.__subclasses__())
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return sorted(found, key=lambda c: (c.__module__, c.__qualname__))


CLASSES = error_classes()


def test_every_error_class_has_its_own_unique_documented_code_in_its_packages_errors_module():
    documented = set(re.findall(r"`([a-z_]+)`", API_DOC.read_text().split("## Errors", 1)[1]))
    codes = {}
    for cls in CLASSES:
        where = f"{cls.__module__}.{cls.__qualname__}"
        assert cls.__module__.endswith(".errors") or cls.__module__ == "metacore.errors", where
        assert cls.__name__ not in SHADOWED, where
        code = cls.__dict__.get("code")
        assert isinstance(code, str) and re.fullmatch(r"[a-z][a-z_]*", code), (where, code)
        assert code not in codes, f"{where} and {codes.get(code)} share the code {code!r}"
        codes[code] = where
        assert code in documented, f"{code!r} ({where}) is not in docs/api.md, Errors"
    assert len(codes) >= 30


def _instance(cls):
    if cls is BundleError:
        return cls("bundle.tar.gz", "boom")
    if cls is ManifestError:
        return cls(["models: boom"])
    return cls("boom")


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__qualname__)
def test_the_envelope_carries_the_status_and_the_code(cls):
    response = envelope_exception_handler(_instance(cls), {})
    assert response.status_code == cls.status
    assert response.data["success"] is False and response.data["message"]
    assert response.data["code"] == cls.code
