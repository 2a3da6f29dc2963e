"""WebSocket routes (hub subsystem)."""
websocket_urlpatterns = []
