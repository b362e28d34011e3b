"""Who is calling: the current username and its file-system-safe id.

Everything in eda_gateway keys on ``current_user.username``, so any
jupyter_server IdentityProvider (ours, JupyterHub's, the default one) works.
``current_actor`` is who a manager is acting for (eda_gateway/authorization.py):
the request's user, ``SERVER`` outside any request, None for a request nobody
authenticated.
"""

from __future__ import annotations

import re
import string

from jupyter_server import CallContext

from .authorization import SERVER, Actor

# Characters that pass through user_id unchanged. Everything else, including
# the escape character itself, becomes "_xx" (hex of each UTF-8 byte), so the
# encoding is injective (collision-free) and reversible, and can never produce
# "/", "..", or a leading "." (hidden name).
_SAFE = frozenset(string.ascii_letters + string.digits + "-")
_ESCAPE = "_"
_ENCODED = re.compile(r"(?:[A-Za-z0-9-]|_[0-9a-f]{2})+")

# Longest id we hand to the file system (names are limited to 255 bytes, and
# "eda_user_" is prepended).
MAX_USER_ID_LENGTH = 200


class InvalidUsername(ValueError):
    """A username that cannot be mapped to a safe id."""


def user_id(username: str) -> str:
    """Encode a username as a safe, collision-free, reversible path component."""
    if not isinstance(username, str) or not username:
        raise InvalidUsername("empty username")
    parts = []
    for char in username:
        if char in _SAFE:
            parts.append(char)
        else:
            parts.extend(f"{_ESCAPE}{byte:02x}" for byte in char.encode("utf-8"))
    encoded = "".join(parts)
    if len(encoded) > MAX_USER_ID_LENGTH:
        raise InvalidUsername("username too long to map to a workspace")
    return encoded


def username_from_id(encoded: str) -> str:
    """Inverse of :func:`user_id`."""
    if not _ENCODED.fullmatch(encoded or ""):
        raise InvalidUsername(f"not an encoded user id: {encoded!r}")
    out = bytearray()
    i = 0
    while i < len(encoded):
        if encoded[i] == _ESCAPE:
            out.append(int(encoded[i + 1 : i + 3], 16))
            i += 3
        else:
            out.extend(encoded[i].encode("ascii"))
            i += 1
    return out.decode("utf-8")


def current_handler():
    """The request handler of the current call, or None outside a request."""
    return CallContext.get(CallContext.JUPYTER_HANDLER)


def current_username() -> str | None:
    """Username of the user behind the current request, if any."""
    handler = current_handler()
    if handler is None:
        return None
    user = handler.current_user
    return getattr(user, "username", None) if user else None


def current_actor() -> Actor:
    """Who the current call acts for: the request's user; ``SERVER`` when no request is
    being handled (the server's own tasks: culling, reclaiming, shutdown, start-up);
    None for a request without an authenticated user (refused everything)."""
    if current_handler() is None:
        return SERVER
    return current_username() or None
