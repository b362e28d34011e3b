"""Sessions kept per user.

jupyter_server finds sessions by path, so alice's and bob's ``Untitled.ipynb``
would share one session (and bob would get alice's kernel). Rows are stored
with the owner's user id in front of the path; every method translates on the
way in and out, so the API still shows plain paths.
"""

from __future__ import annotations

from jupyter_server.services.sessions.sessionmanager import SessionManager
from tornado.web import HTTPError

from .authorization import Ownership, Roles
from .users import InvalidUsername, current_actor, current_username, user_id, username_from_id

_SEP = "|"  # cannot occur in a user id


def _scoped(owner: str, path: str | None) -> str:
    return f"{user_id(owner)}{_SEP}{path or ''}"


def _split(stored: str | None) -> tuple[str | None, str | None]:
    if stored and _SEP in stored:
        encoded, path = stored.split(_SEP, 1)
        try:
            return username_from_id(encoded), path
        except InvalidUsername:
            pass
    return None, stored


class EDASessionManager(SessionManager):
    """SessionManager whose sessions belong to users."""

    # Until eda_gateway wires the shared service: nobody is an admin.
    ownership: Ownership | None = None

    def _ownership(self) -> Ownership:
        return self.ownership or Ownership(Roles(()), self.kernel_manager.owner_of, self.owner_of_session)

    def _caller(self) -> str:
        username = current_username()
        if not username:
            raise HTTPError(403, "sessions need an authenticated user")
        return username

    def owner_of_session(self, session_id: str) -> str | None:
        row = self.cursor.execute(
            "SELECT path FROM session WHERE session_id=?", (session_id,)
        ).fetchone()
        return _split(row["path"])[0] if row else None

    def _check_kernel(self, kernel_id: str | None, username: str) -> None:
        if kernel_id and kernel_id in self.kernel_manager and not self._ownership().may_use_kernel(username, kernel_id):
            raise HTTPError(403, "This kernel belongs to another user")

    # --- path-keyed lookups are per caller ----------------------------------

    async def session_exists(self, path):
        return await super().session_exists(_scoped(self._caller(), path))

    async def get_session(self, **kwargs):
        if "path" in kwargs:
            kwargs["path"] = _scoped(self._caller(), kwargs["path"])
        return await super().get_session(**kwargs)

    async def create_session(self, path=None, name=None, type=None, kernel_name=None, kernel_id=None):
        self._check_kernel(kernel_id, self._caller())
        return await super().create_session(
            path=path, name=name, type=type, kernel_name=kernel_name, kernel_id=kernel_id
        )

    async def save_session(self, session_id, path=None, name=None, type=None, kernel_id=None):
        return await super().save_session(
            session_id, path=_scoped(self._caller(), path), name=name, type=type, kernel_id=kernel_id
        )

    async def update_session(self, session_id, **kwargs):
        owner = self.owner_of_session(session_id)
        caller = self._caller()
        if not self._ownership().may_use_session(caller, session_id):
            raise HTTPError(403, "This session belongs to another user")
        if "kernel_id" in kwargs:
            self._check_kernel(kwargs["kernel_id"], caller)
        if "path" in kwargs:
            kwargs["path"] = _scoped(owner or caller, kwargs["path"])
        return await super().update_session(session_id, **kwargs)

    def get_kernel_env(self, path, name=None):
        return super().get_kernel_env(_split(path)[1], name)

    async def row_to_model(self, row, tolerate_culled=False):
        model = await super().row_to_model(row, tolerate_culled=tolerate_culled)
        if model is not None:
            model["path"] = _split(model["path"])[1]
            if "notebook" in model:
                model["notebook"]["path"] = model["path"]
        return model

    async def list_sessions(self):
        caller = current_actor()
        sessions = await super().list_sessions()
        if self._ownership().sees_everything(caller):
            return sessions
        if not caller:
            return []  # a request without a user sees no session
        mine = {
            row["session_id"]
            for row in self.cursor.execute("SELECT session_id, path FROM session").fetchall()
            if _split(row["path"])[0] == caller
        }
        return [s for s in sessions if s["id"] in mine]
