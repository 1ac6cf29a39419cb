"""Where the current request's id and client address live while it is handled.

RequestContextMiddleware sets them; audit_record reads them. A contextvar (not a
thread-local) so it follows the request through async code and into the thread that
runs a sync view. Outside a request (engine threads, Celery tasks, commands) both are
empty.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    ip: str | None = None


_NONE = RequestContext()
_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "glimpse_request_context", default=None
)


def current() -> RequestContext:
    return _current.get() or _NONE


def activate(context: RequestContext) -> contextvars.Token:
    return _current.set(context)


def deactivate(token: contextvars.Token) -> None:
    _current.reset(token)
