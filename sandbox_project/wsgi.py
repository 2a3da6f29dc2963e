"""The WSGI application granian serves (`make web`): every HTTP request (the REST API, the
admin, the docs). WebSockets (/api/ws) are served by Daphne from `asgi.py` (docs/embedding.md)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sandbox_project.settings")

application = get_wsgi_application()
