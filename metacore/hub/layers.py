"""Channel layers for the hub.

`InMemoryChannelLayer`: Channels' in-memory layer scans every pending channel and every
group member for expired entries on *each* receive and group_send, so a fanout to N sockets
costs O(N) per delivered message, O(N^2) per event; the hub's sockets sit in several groups
(model, user, lifecycle), which multiplies it. Expiry only needs to be approximate (the
default expiry is 60 s), so this subclass runs that scan at most once per second. Same
semantics otherwise; a host selects it with
`CHANNEL_LAYERS = {"default": {"BACKEND": "metacore.hub.layers.InMemoryChannelLayer"}}`.
"""

import time

from channels.layers import InMemoryChannelLayer as ChannelsInMemoryChannelLayer

CLEAN_INTERVAL_S = 1.0


class InMemoryChannelLayer(ChannelsInMemoryChannelLayer):
    _next_clean = 0.0

    def _clean_expired(self):
        now = time.monotonic()
        if now >= self._next_clean:
            self._next_clean = now + CLEAN_INTERVAL_S
            super()._clean_expired()
