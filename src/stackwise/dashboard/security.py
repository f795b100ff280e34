"""The dashboard's guard, in front of every route (pure ASGI middleware):

- a token, when one is set (always when bound beyond loopback): `Authorization: Bearer T`,
  `?token=T` (then kept in an HttpOnly, SameSite=Strict cookie so links work), or that
  cookie; otherwise 401;
- read-only unless actions are allowed: any method but GET/HEAD is 403; an allowed POST must
  come from the dashboard's own pages (same Origin, and a JSON body or the form key of this
  process), so another web site cannot post a promotion through a browser;
- the Host header, when a set of hosts is given, must be one of them (DNS rebinding);
- headers on every answer: a Content-Security-Policy that allows only the dashboard's own
  scripts (an injected inline script would not run even if it reached a page), nosniff, no
  framing, no referrer (a token in a URL never leaks to links out).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import secrets
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "stackwise_dashboard_token"
SAFE_METHODS = ("GET", "HEAD")
READ_ONLY = (
    "the dashboard is read-only; start it with --allow-actions to promote or roll back from it."
)
HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
     b"img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]  # fmt: skip


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(24)


class Guard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | None,
        allow_actions: bool,
        form_key: str,
        allowed_hosts: set[str] | None = None,
    ) -> None:
        self.app = app
        self.token = token
        self.allow_actions = allow_actions
        self.form_key = form_key
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
        set_cookie = False
        if self.allowed_hosts is not None and headers.get("host", "") not in self.allowed_hosts:
            await _deny(send, 421, "unknown Host header: open the dashboard by the address it "
                                   "printed when it started.")  # fmt: skip
            return
        if self.token is not None:
            given = _bearer(headers) or (query.get("token") or [""])[0] or _cookie(headers)
            if not given or not hmac.compare_digest(given.encode(), self.token.encode()):
                await _deny(send, 401, "a token is required: add ?token=TOKEN to the address or "
                                       "send Authorization: Bearer TOKEN (the token "
                                       "`stackwise dashboard` printed).")  # fmt: skip
                return
            set_cookie = "token" in query
        if scope["method"] not in SAFE_METHODS:
            if not self.allow_actions:
                await _deny(send, 403, READ_ONLY)
                return
            if not _same_origin(headers, scope):
                await _deny(send, 403, "a request from another site was refused.")
                return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = list(HEADERS)
                if set_cookie and self.token is not None:
                    cookie = f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"
                    extra.append((b"set-cookie", cookie.encode()))
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _same_origin(headers: dict[str, str], scope: Scope) -> bool:
    origin = headers.get("origin")
    if origin is not None and urllib.parse.urlsplit(origin).netloc != headers.get("host"):
        return False
    kind = headers.get("content-type", "")
    # A cross-site form cannot send JSON (that needs a CORS preflight, which we never answer);
    # our own forms carry the process's form key, checked by the route.
    return kind.startswith("application/json") or kind.startswith(
        "application/x-www-form-urlencoded"
    )


def _bearer(headers: dict[str, str]) -> str:
    value = headers.get("authorization", "")
    return value[7:].strip() if value.lower().startswith("bearer ") else ""


def _cookie(headers: dict[str, str]) -> str:
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return ""


async def _deny(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *HEADERS]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})
