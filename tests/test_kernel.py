"""The kernel only wires: a host that replaces one part (METACORE['KERNEL_CLASS'], one
overridden property) reaches every service using that part, and the kernel is rebuilt when
settings.METACORE changes."""

from functools import cached_property

import pytest
from django.contrib.auth.models import User
from django.test import override_settings

from metacore import errors
from metacore.audit.pipe import AuditEvent, AuditPipe
from metacore.conf import metacore_settings
from metacore.kernel import Kernel, get_kernel

pytestmark = pytest.mark.django_db

HEARD: list[AuditEvent] = []


class ListeningKernel(Kernel):
    """A host's kernel: its own audit pipe, everything else as shipped."""

    @cached_property
    def audit(self) -> AuditPipe:
        return AuditPipe([HEARD.append])


def test_a_replaced_part_reaches_every_service_that_uses_it():
    HEARD.clear()
    user = User.objects.create_user("ann")
    shipped = get_kernel()
    with override_settings(
        METACORE={**metacore_settings.user_settings, "KERNEL_CLASS": f"{__name__}.ListeningKernel"}
    ):
        kernel = get_kernel()
        assert type(kernel) is ListeningKernel and kernel is not shipped
        with pytest.raises(errors.Forbidden):
            kernel.permissions.require(user, "tickets.tickets.read")
        assert [(e.kind, e.actor, e.decision) for e in HEARD] == [("permission.check", str(user.pk), "deny")]
        users_of_audit = [
            kernel.permissions,
            kernel.enforcer,
            kernel.egress,
            kernel.store,
            kernel.transfer,
            kernel.tenant_schemas,
            kernel.installer,
            kernel.sandbox_imports,
            kernel.deliveries,
            kernel.schedules,
            kernel.tools,
        ]
        assert all(service.audit is kernel.audit for service in users_of_audit)
    assert type(get_kernel()) is Kernel  # rebuilt from the settings of then
