import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sandbox_project.settings")

from metacore.asgi import get_asgi_application  # noqa: E402

application = get_asgi_application()
