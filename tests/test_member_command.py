import uuid

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from metacore.store.tenancy import default_tenant_resolver

pytestmark = pytest.mark.django_db


def test_member_command_sets_the_tenant_the_default_resolver_reads(capsys):
    user = get_user_model().objects.create_user("ana")
    assert default_tenant_resolver(user) is None
    call_command("metacore_member", "ana")
    first = default_tenant_resolver(get_user_model().objects.get(pk=user.pk))
    assert uuid.UUID(first) and first in capsys.readouterr().out
    org = uuid.uuid4()
    call_command("metacore_member", "ana", "--organization", str(org))
    assert default_tenant_resolver(get_user_model().objects.get(pk=user.pk)) == str(org)


@pytest.mark.parametrize(
    "args,message", [(["nobody"], "no user"), (["ana", "--organization", "x"], "not a UUID")]
)
def test_member_command_errors(args, message):
    get_user_model().objects.create_user("ana")
    with pytest.raises(CommandError, match=message):
        call_command("metacore_member", *args)
