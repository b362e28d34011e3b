"""Identity: ``EDAIdentityProvider`` maps per-user tokens to usernames.

Who may do what is decided in eda_gateway/authorization.py (``EDAAuthorizer``,
importable from here too, as configs written for earlier versions name it).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import time

from jupyter_server.auth.identity import IdentityProvider, User
from tornado import web
from traitlets import Dict, Float, Instance, Int, TraitError, Unicode, default, validate

from .authorization import EDAAuthorizer  # noqa: F401 (re-exported)
from .guessing import GuessThrottle
from .metrics import AUTH_FAILURES, AUTH_THROTTLED

SHORT_TOKEN = 16  # plain-text tokens shorter than this draw a start-up warning
COOKIE_DAYS = 31  # tornado's default max age of a secure cookie: how long a revocation must last
REVOKED_FILE = "eda_gateway_logged_out_sessions.json"

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

    free_failed_logins = Int(
        10, config=True,
        help="Wrong tokens or logins one client address may send before each further one doubles its wait.",
    )
    max_login_backoff = Float(
        60.0, config=True, help="Longest wait (seconds) imposed on an address that keeps sending wrong tokens.",
    )
    throttle = Instance(GuessThrottle, help="Backoff for failed tokens and logins, per client address.")

    @default("throttle")
    def _throttle_default(self):
        return GuessThrottle(free_failures=self.free_failed_logins, max_delay=self.max_login_backoff)

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

    def warn_weak_tokens(self, log) -> None:
        """At start-up: name (never show) users whose plain-text token is short."""
        short = sorted(u for u, t in self.user_tokens.items() if not t.startswith("sha256:") and len(t) < SHORT_TOKEN)
        if short:
            log.warning("eda_gateway auth: the tokens of %s are shorter than %d characters: easy to guess; "
                        "use e.g. secrets.token_hex(16)", ", ".join(short), SHORT_TOKEN)

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

    # --- guessing: every presented secret goes through _check ---------------------
    def _check(self, handler, secret: str, kind: str) -> str | None:
        """The username ``secret`` belongs to; failures count against the client's address,
        and an address in backoff is answered 429 (Retry-After) before anything is compared."""
        address = handler.request.remote_ip or "?"
        wait = self.throttle.retry_after(address)
        if wait > 0:
            AUTH_THROTTLED.labels(kind).inc()
            handler.request.eda_retry_after = wait  # the Retry-After header (RetryAfterTransform)
            raise web.HTTPError(429, f"too many failed authentications from {address}; retry in {wait:.0f} s")
        username = self.user_for_token_value(secret)
        if username is None:
            failures = self.throttle.failed(address)
            AUTH_FAILURES.labels(kind).inc()
            if failures == 1 or failures & (failures - 1) == 0:  # 1, 2, 4, 8...: bounded log lines
                self.log.warning("eda_gateway auth: wrong %ss from %s: %d in a row", kind, address, failures)
        return username

    async def get_user_token(self, handler) -> User | None:
        token = self.get_token(handler) or ""
        if not token:
            return None
        username = self._check(handler, token, "token")
        return self._user(username) if username else None

    def process_login_form(self, handler) -> User | None:
        # The login page's single "password" field takes the user's token.
        username = self._check(handler, handler.get_argument("password", default=""), "login")
        return self._user(username) if username else None

    # --- cookies: each login is a session the server can revoke ------------------------
    def user_to_cookie(self, user: User) -> str:
        cookie = json.loads(super().user_to_cookie(user))
        cookie["session"] = secrets.token_urlsafe(18)
        return json.dumps(cookie)

    def user_from_cookie(self, cookie_value: str) -> User | None:
        try:
            session = json.loads(cookie_value).get("session")
        except (ValueError, AttributeError):
            return None
        if not session or session in self._revoked():
            return None  # logged out (or a cookie from before sessions existed)
        user = super().user_from_cookie(cookie_value)
        # A user removed from the config loses access even with an old cookie.
        if user is None or user.username not in self.user_tokens:
            return None
        return user

    def clear_login_cookie(self, handler) -> None:
        """Logout: the cookie is refused from now on, even if someone kept a copy."""
        value = handler.get_secure_cookie(self.get_cookie_name(handler), **self.get_secure_cookie_kwargs)
        try:
            session = json.loads(value or b"{}").get("session")
        except (ValueError, AttributeError):
            session = None
        if session:
            revoked = self._revoked()
            now = time.time()
            revoked[session] = now + COOKIE_DAYS * 86400
            for old in [s for s, until in revoked.items() if until < now]:
                del revoked[old]
            self._save_revoked(revoked)
        super().clear_login_cookie(handler)

    # Kept beside the cookie secret (the runtime dir): a cookie signed with it stays
    # valid across restarts, so its revocation must too.
    def _revoked_file(self) -> str | None:
        runtime_dir = getattr(self.parent, "runtime_dir", None)
        return os.path.join(runtime_dir, REVOKED_FILE) if runtime_dir else None

    _revoked_sessions: dict[str, float] | None = None  # session -> until when it is refused; loaded once

    def _revoked(self) -> dict[str, float]:
        if self._revoked_sessions is None:
            self._revoked_sessions = {}
            path = self._revoked_file()
            try:
                with open(path or "") as f:
                    self._revoked_sessions.update({str(k): float(v) for k, v in json.load(f).items()})
            except (OSError, ValueError, TypeError, AttributeError):
                pass  # none yet (or unreadable: logouts from now on are still kept)
        return self._revoked_sessions

    def _save_revoked(self, revoked: dict[str, float]) -> None:
        path = self._revoked_file()
        if not path:
            return
        try:
            temporary = f"{path}.{os.getpid()}.tmp"
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(revoked, f)
            os.replace(temporary, path)
        except OSError as e:
            self.log.warning("eda_gateway auth: could not keep logged-out sessions in %s: %s", path, e)

    @property
    def login_available(self) -> bool:
        return True
