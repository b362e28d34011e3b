"""jupyter_server's own routes, answered our way.

Extension handlers are matched before the server's own, so these subclasses
take over the routes:
- POST /api/sessions: jupyter_server turns any error of ``create_session``
  into a 500; re-raise the ownership/quota HTTPError that caused it.
- POST /api/shutdown: refusals in JSON, like every other API answer.
- GET /api/resolvePath: a ``kernel=`` that is not the caller's is "not found", like an
  unknown one (the kernel scope answered for anyone's kernel; the provisioner's
  ``resolve_path`` keeps to the owner's folders).
- GET /metrics: admins only (when ``authenticate_prometheus``, the default): the
  gauges are labelled by user, and jupyter_server lets any logged-in user read them.
"""

from __future__ import annotations

from jupyter_server.base.handlers import APIHandler, PrometheusMetricsHandler
from jupyter_server.services.api.handlers import PathResolverHandler
from jupyter_server.services.shutdown import ShutdownHandler
from jupyter_server.services.sessions.handlers import SessionRootHandler
from tornado import web

from ..authorization import ADMIN, handler_has_scope


class EDASessionRootHandler(SessionRootHandler):
    async def post(self):
        try:
            return await super().post()
        except web.HTTPError as error:
            cause = error.__cause__
            if error.status_code == 500 and isinstance(cause, web.HTTPError):
                raise cause from None
            raise


class EDAShutdownHandler(ShutdownHandler):
    write_error = APIHandler.write_error


class EDAMetricsHandler(PrometheusMetricsHandler):
    async def prepare(self):
        await super().prepare()
        if self.settings["authenticate_prometheus"] and self.current_user is not None:
            if not handler_has_scope(self, ADMIN):
                raise web.HTTPError(403, "metrics are for admins")


class _OnlyOwnKernels:
    """The kernel manager as one user sees it: others' kernels are unknown (404)."""

    def __init__(self, kernel_manager, username: str):
        self._kernel_manager, self._username = kernel_manager, username

    def get_kernel(self, kernel_id: str):
        if not self._kernel_manager.may_act_on(kernel_id, self._username):
            raise web.HTTPError(404)
        return self._kernel_manager.get_kernel(kernel_id)


class EDAPathResolverHandler(PathResolverHandler):
    @property
    def kernel_manager(self):
        return _OnlyOwnKernels(super().kernel_manager, self.current_user.username)


routes = [
    (r"/api/resolvePath", EDAPathResolverHandler),
    (r"/metrics", EDAMetricsHandler),
    (r"/api/sessions", EDASessionRootHandler),
    (r"/api/shutdown", EDAShutdownHandler),
]
