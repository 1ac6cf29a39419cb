"""Django's own middlewares, without the thread hops they need not make.

Under ASGI, Django runs each hook of a classic middleware (process_request,
process_response) through `sync_to_async(thread_sensitive=True)`: a hop to a thread and
back for every hook of every middleware on every request. Seven of them made twelve hops
per request, a few milliseconds of a cached API answer's time.

- Security, Common and X-Frame-Options only read the request and set headers: their hooks
  run on the event loop (`_Inline`).
- CSRF's view check is skipped at once for exempt views (every API view), without a hop.
- Sessions, CSRF, the user and messages mean nothing to the partner API: `/v1/` takes a
  bearer key (api/authentication.py), no cookies, and its views are CSRF-exempt. Those
  middlewares step aside there (`_BrowserOnly`) and work as before everywhere else,
  hops included, since a session may be saved to the database.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from django.middleware.csrf import CsrfViewMiddleware
from django.middleware.security import SecurityMiddleware

PARTNER_API_PREFIX = "/v1/"


class _Inline:
    """Hooks that touch no database and block on nothing: called on the event loop."""

    async def __acall__(self, request):
        response = None
        if hasattr(self, "process_request"):
            response = self.process_request(request)
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            response = self.process_response(request, response)
        return response


class _BrowserOnly:
    """Skipped on the partner API; unchanged elsewhere."""

    async def __acall__(self, request):
        if request.path.startswith(PARTNER_API_PREFIX):
            return await self.get_response(request)
        return await super().__acall__(request)


class InlineSecurityMiddleware(_Inline, SecurityMiddleware):
    pass


class InlineCommonMiddleware(_Inline, CommonMiddleware):
    pass


class InlineXFrameOptionsMiddleware(_Inline, XFrameOptionsMiddleware):
    pass


class BrowserSessionMiddleware(_BrowserOnly, SessionMiddleware):
    pass


class BrowserCsrfViewMiddleware(_BrowserOnly, CsrfViewMiddleware):
    async def process_view(self, request, callback, callback_args, callback_kwargs):
        # The check itself may parse a form body: in a thread, as Django would run it.
        # Exempt views (every API view) need no check and no hop.
        if getattr(callback, "csrf_exempt", False):
            return None
        check = super().process_view
        return await sync_to_async(check, thread_sensitive=True)(
            request, callback, callback_args, callback_kwargs
        )


class BrowserAuthenticationMiddleware(_BrowserOnly, AuthenticationMiddleware):
    pass


class BrowserMessageMiddleware(_BrowserOnly, MessageMiddleware):
    pass
