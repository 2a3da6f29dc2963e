"""The background tasks (Django's Tasks API; any configured backend runs them)."""

from django_tasks import task


@task()
def deliver_webhook(delivery_id: str) -> str:
    """One attempt of one delivery (a duplicate or late task finds nothing to claim)."""
    from metacore.runtime import get_kernel

    return get_kernel().deliveries.attempt(delivery_id)


@task()
def run_schedule(run_id: int) -> str:
    """The export of one claimed schedule tick."""
    from metacore.runtime import get_kernel

    return get_kernel().schedules.run(run_id)
