"""Keep credentials out of logs.

Immich takes credentials in the query string (``?apiKey=``, ``?sessionKey=``, ``?key=``,
``?slug=``); urllib3 (DEBUG) and werkzeug log full URLs. This filter masks those values
in every record of the loggers it is installed on.
"""

from __future__ import annotations

import logging
import re

_QUERY = re.compile(r"(?i)([?&](?:apikey|sessionkey|key|slug)=)[^&\s\"']+")
_HEADER = re.compile(r"(?i)(bearer\s+|immich_access_token=)[^\s;\"',]+")
LOGGERS = (
    "urllib3.connectionpool",
    "werkzeug",
    "gunicorn.access",
    "gunicorn.error",
    "granian.access",
    "_granian",
    "twinlens.gateway",
)


def redact(text: str) -> str:
    return _HEADER.sub(r"\1***", _QUERY.sub(r"\1***", text))


class RedactFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is not ours to fix
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


def install() -> None:
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactFilter) for f in logger.filters):
            logger.addFilter(RedactFilter())
