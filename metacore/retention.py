"""Retention: delete old rows in batches, so a large backlog never holds one huge delete."""


def delete_in_batches(queryset, batch_size: int) -> int:
    """Delete every row of `queryset`, `batch_size` primary keys at a time; returns how many."""
    deleted = 0
    while True:
        ids = list(queryset.values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        deleted += queryset.model.objects.filter(pk__in=ids).delete()[0]
