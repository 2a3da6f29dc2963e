"""Settings of worker processes started by the tests: the sandbox project, plus the test
receiver's resolver and an explicit loopback allowance (never the default)."""

from sandbox_project.settings import *  # noqa: F401,F403
from sandbox_project.settings import METACORE

METACORE = {
    **METACORE,
    "HTTP_RESOLVER": "webhook_receiver.resolve",
    "HTTP_ALLOWED_NETWORKS": ["127.0.0.1/32"],
    "WEBHOOK_RETRY_BASE_S": 0.2,
}
