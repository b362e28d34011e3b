"""Identity (tokens -> users) and authorization (who may touch what).

``EDAIdentityProvider`` maps per-user tokens to usernames. ``EDAAuthorizer``
enforces ownership of kernels and sessions, keeps terminals and server
shutdown for admins, and works with any IdentityProvider.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

from jupyter_server.auth.authorizer import Authorizer
from jupyter_server.auth.identity import IdentityProvider, User
from traitlets import Dict, TraitError, Unicode, default, validate

_SHA256 = re.compile(r"sha256:([0-9a-fA-F]{64})")


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class EDAIdentityProvider(IdentityProvider):
    """One token per user: ``Authorization: token ...``, ``?token=...`` or the login form."""

    user_tokens = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        config=True,
        help="""Map of username -> token. A token may be given in plain text or as
        'sha256:<hex digest of the token>' so the config file need not hold secrets.""",
    )

    @default("token")
    def _token_default(self):
        # No shared server token: every request must name a user.
        self.token_generated = False
        return ""

    @validate("user_tokens")
    def _validate_user_tokens(self, proposal):
        for username, token in proposal["value"].items():
            if not username:
                raise TraitError("EDAIdentityProvider.user_tokens: empty username")
            if not token or (token.startswith("sha256:") and not _SHA256.fullmatch(token)):
                raise TraitError(
                    f"EDAIdentityProvider.user_tokens[{username!r}]: give a non-empty token "
                    "or 'sha256:' followed by 64 hex digits"
                )
        return proposal["value"]

    def _digests(self) -> list[tuple[str, bytes]]:
        # Compare digests, not tokens: equal-length inputs for compare_digest,
        # and plain and hashed entries are checked the same way.
        cached = getattr(self, "_digest_cache", None)
        if cached is None or cached[0] is not self.user_tokens:
            table = []
            for username, token in self.user_tokens.items():
                match = _SHA256.fullmatch(token)
                table.append((username, bytes.fromhex(match.group(1)) if match else _digest(token)))
            cached = (self.user_tokens, table)
            self._digest_cache = cached
        return cached[1]

    def user_for_token_value(self, token: str) -> str | None:
        """The username a token belongs to, compared in constant time per entry."""
        if not token:
            return None
        presented = _digest(token)
        found = None
        for username, expected in self._digests():
            if hmac.compare_digest(presented, expected):
                found = username  # keep looping: time does not depend on position
        return found

    def _user(self, username: str) -> User:
        return User(username=username, name=username, display_name=username)

    async def get_user_token(self, handler) -> User | None:
        username = self.user_for_token_value(self.get_token(handler) or "")
        if username is None:
            return None
        return self._user(username)

    def user_from_cookie(self, cookie_value: str) -> User | None:
        user = super().user_from_cookie(cookie_value)
        # A user removed from the config loses access even with an old cookie.
        if user is None or user.username not in self.user_tokens:
            return None
        return user

    def process_login_form(self, handler) -> User | None:
        # The login page's single "password" field takes the user's token.
        username = self.user_for_token_value(handler.get_argument("password", default=""))
        return self._user(username) if username else None

    @property
    def login_available(self) -> bool:
        return True


class EDAAuthorizer(Authorizer):
    """Ownership rules on top of jupyter_server's resource/action checks."""

    def _gateway(self, handler):
        return handler.settings.get("eda_gateway")

    def is_authorized(self, handler, user: Any, action: str, resource: str) -> bool:
        gateway = self._gateway(handler)
        if gateway is None or user is None:
            # eda_gateway did not load: fail closed rather than share everything.
            return False
        username = user.username
        if gateway.is_admin(username):
            return True
        if resource in ("terminals", "server"):
            # terminals run code outside every limit; "server" write is shutdown
            return False
        if resource == "lsp" and action == "execute":
            # jupyter_lsp's language servers run outside every limit, and one server
            # per language is shared by all clients (one user's documents reach another)
            return False
        if resource == "events":
            # the event bus carries every user's kernel and file events
            return False
        if resource == "config" and action == "write":
            # frontend config is shared by everyone
            return False
        kwargs = getattr(handler, "path_kwargs", None) or {}
        kernel_id = kwargs.get("kernel_id")
        if kernel_id and resource == "kernels" and kernel_id in gateway.kernel_manager:
            return gateway.kernel_manager.owner_of(kernel_id) == username
        session_id = kwargs.get("session_id")
        if session_id and resource == "sessions":
            owner = gateway.session_manager.owner_of_session(session_id)
            # unknown session: let the handler answer 404
            return owner is None or owner == username
        return True
