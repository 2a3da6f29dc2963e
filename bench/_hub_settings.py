"""Sandbox settings with channel-layer queues large enough for the hub bench's bursts (200
writes to 1,000 sockets at once), so neither the hub nor the bare baseline loses messages in
the layer itself (Channels' default capacity is 100 per channel)."""

from sandbox_project.settings import *  # noqa: F401,F403
from sandbox_project.settings import CHANNEL_LAYERS

CHANNEL_LAYERS["default"].setdefault("CONFIG", {})["capacity"] = 5000
CHANNEL_LAYERS["default"]["CONFIG"]["expiry"] = 120
if "hosts" in CHANNEL_LAYERS["default"]["CONFIG"]:
    # redis-py's pool allows 100 connections by default; 1,000 sockets joining groups at once
    # need more (each group_add borrows one).
    for host in CHANNEL_LAYERS["default"]["CONFIG"]["hosts"]:
        host["max_connections"] = 2000
