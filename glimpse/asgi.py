"""ASGI entry point: HTTP through Django, websockets through Channels."""

import asyncio
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "glimpse.settings")
# Django must be set up before anything imports models (as get_asgi_application does).
django.setup(set_prefix=False)

from glimpse.http_handler import ReusedThreadASGIHandler  # noqa: E402

django_http = ReusedThreadASGIHandler()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from assistant.routing import websocket_urlpatterns  # noqa: E402
from inference.events import bind_server_loop  # noqa: E402
from inference.startup import embedded_startup  # noqa: E402


class BindLoop:
    """Remembers the server's event loop so engine threads can publish to the in-memory
    channel layer, whose queues belong to that loop."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        bind_server_loop(asyncio.get_running_loop())
        return await self.app(scope, receive, send)


application = BindLoop(
    ProtocolTypeRouter(
        {
            "http": django_http,
            # Origin must match ALLOWED_HOSTS: a page on another site cannot open a socket
            # with the user's session cookie.
            "websocket": AllowedHostsOriginValidator(
                AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
            ),
        }
    )
)

if settings.INFERENCE_MODE == "embedded" and settings.RUN_STARTUP_TASKS:
    embedded_startup()
