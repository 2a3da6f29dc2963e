"""Owned by its subsystem; filled as it lands."""
urlpatterns = []
