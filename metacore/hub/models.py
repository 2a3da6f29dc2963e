"""Presence of the hub's sockets, shared by every process through the database."""

from django.db import models


class HubConnection(models.Model):
    """One open WebSocket: written when it connects, deleted when it closes, and kept alive
    by its process's heartbeat (`metacore.hub.presence`). A row whose `expires_at` passed
    belongs to a process that died without closing it and counts as gone."""

    id = models.CharField(primary_key=True, max_length=32)  # the socket's connection id (uuid4 hex)
    user_id = models.CharField(max_length=64, db_index=True)
    tenant = models.CharField(max_length=64, blank=True, db_index=True)
    channel = models.CharField(max_length=200, blank=True)  # the `?channel=` it was opened with
    connected_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)
