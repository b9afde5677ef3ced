"""The optional access token, checked for every request (ASGI middleware, HTTP and WebSocket).

A request carries the token as `Authorization: Bearer T` (API clients) or as the cookie the login
form sets (browsers; sent on the live page's WebSocket too). Pages without it are redirected to
/login; everything else gets 401 with a JSON error. The login page and the static assets (HTML, JS
and CSS with no data in them) are open.
"""

from __future__ import annotations

import hmac
import json
from http.cookies import CookieError, SimpleCookie
from urllib.parse import quote

COOKIE = "dagan_token"
OPEN_PATHS = ("/login", "/static/")
PAGES = ("/", "/live")


def _headers(scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def presented_token(scope) -> str | None:
    """The bearer token, else the login cookie, else None."""
    headers = _headers(scope)
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    cookie = SimpleCookie()
    try:
        cookie.load(headers.get("cookie", ""))
    except CookieError:  # a malformed Cookie header is no token
        return None
    morsel = cookie.get(COOKIE)
    return morsel.value if morsel else None


def token_ok(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


class TokenMiddleware:
    """Lets a request through only with the right token (see the module docstring)."""

    def __init__(self, app, token: str | None):
        self.app = app
        self.token = token

    async def __call__(self, scope, receive, send):
        if self.token is None or scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        path = scope.get("path", "/")
        if path.startswith(OPEN_PATHS) or token_ok(self.token, presented_token(scope)):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            return await send({"type": "websocket.close", "code": 4401, "reason": "unauthorized"})
        if path in PAGES:
            location = "/login?next=" + quote(path)
            return await _respond(send, 303, b"", [(b"location", location.encode())])
        given = presented_token(scope)
        message = "missing token: send 'Authorization: Bearer TOKEN'" if given is None else "wrong token"
        body = json.dumps({"error": message}).encode()
        await _respond(send, 401, body, [(b"content-type", b"application/json"),
                                         (b"www-authenticate", b'Bearer realm="dagan"')])


async def _respond(send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers = headers + [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
