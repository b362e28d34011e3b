"""Keep tokens out of the server log.

jupyter_server scrubs ``?token=`` in its access log, but tornado's warning for
an HTTPError (``404 GET /api/...?token=...``) prints the raw URI.
"""

from __future__ import annotations

import logging
import re

_SECRET_PARAM = re.compile(r"((?:token|_xsrf|password)=)[^&\s'\"]+", re.IGNORECASE)
_AUTH_HEADER = re.compile(r"((?:token|bearer)\s+)[^\s'\"]+", re.IGNORECASE)


def scrub(text: str) -> str:
    return _AUTH_HEADER.sub(r"\1[secret]", _SECRET_PARAM.sub(r"\1[secret]", text))


class TokenScrubbingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


def install(*loggers: logging.Logger) -> None:
    """Scrub secrets from tornado's loggers and the given ones (idempotent)."""
    targets = [logging.getLogger(n) for n in ("tornado.general", "tornado.application", "tornado.access")]
    for logger in [*targets, *loggers]:
        if not any(isinstance(f, TokenScrubbingFilter) for f in logger.filters):
            logger.addFilter(TokenScrubbingFilter())
