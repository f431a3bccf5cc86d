"""The server's own log: one line per request at info level, and the app's warnings and errors.

Lines go to stderr (beside gunicorn's) and, with ``[logging] file``, to that file too, rotated at
``max_bytes`` with ``backups`` old files kept, as text or as JSON lines (``[logging] format``). The level is
``[server] log_level``: the request lines show at ``info`` and ``debug``; at the default ``warning`` they
cost nothing, as the line is never made.

Several workers write one file: each appends whole lines, and the one that finds the file full rotates it
under a lock; the others notice the new file and reopen it, so no line lands in a rotated-away file.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sys
from logging.handlers import RotatingFileHandler

LOGGER = "mock_openai"
REQUESTS = LOGGER + ".requests"
_OURS = "_mock_openai_handler"


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class SharedRotatingFileHandler(RotatingFileHandler):
    """A rotating file that several processes append to."""

    def shouldRollover(self, record) -> bool:
        if self.stream is not None and self._replaced():
            self.stream.close()
            self.stream = self._open()  # another worker rotated it
        return super().shouldRollover(record)

    def _replaced(self) -> bool:
        try:
            return os.stat(self.baseFilename).st_ino != os.fstat(self.stream.fileno()).st_ino
        except OSError:
            return True

    def doRollover(self) -> None:
        with open(self.baseFilename + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if self.stream is not None and self._replaced():  # rotated while we waited: just reopen
                    self.stream.close()
                    self.stream = self._open()
                    return
                super().doRollover()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def configure(settings) -> logging.Logger:
    """Set up the ``mock_openai`` loggers for this process from the settings (again on every call)."""
    config = settings.logging
    logger = logging.getLogger(LOGGER)
    for handler in [h for h in logger.handlers if getattr(h, _OURS, False)]:
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(settings.server["log_level"].upper())
    logger.propagate = False
    formatter = (
        JSONFormatter()
        if config["format"] == "json"
        else logging.Formatter("%(asctime)s [%(process)d] [%(levelname)s] %(message)s", "%Y-%m-%d %H:%M:%S %z")
    )
    handlers = [logging.StreamHandler(sys.stderr)]
    if config["file"]:
        os.makedirs(os.path.dirname(os.path.abspath(config["file"])), exist_ok=True)
        handlers.append(
            SharedRotatingFileHandler(config["file"], maxBytes=config["max_bytes"], backupCount=config["backups"])
        )
    for handler in handlers:
        setattr(handler, _OURS, True)
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    return logger


def request_logger(settings):
    """An observer of finished exchanges that logs each one, or None when no line would show."""
    logger = logging.getLogger(REQUESTS)
    if not settings.logging["requests"] or not logger.isEnabledFor(logging.INFO):
        return None
    as_json = settings.logging["format"] == "json"

    def log_request(exchange) -> None:
        environ, note = exchange.environ, exchange.note
        fields = {
            "method": environ.get("REQUEST_METHOD"),
            "path": environ.get("PATH_INFO"),
            "status": int(exchange.status[:3]),
            "latency_ms": round(exchange.latency * 1000, 1),
            "model": note.get("model"),
            "stream": exchange.stream,
            "prompt_tokens": note.get("prompt_tokens"),
            "completion_tokens": note.get("completion_tokens"),
            "request_id": next((v for k, v in exchange.headers if k == "x-request-id"), None),
        }
        if environ.get("HTTP_X_MOCK_TEST_ID"):
            fields["test_id"] = environ["HTTP_X_MOCK_TEST_ID"]
        if as_json:
            message = "request"
        else:
            tokens = (
                f" tokens={fields['prompt_tokens']}+{fields['completion_tokens']}"
                if fields["prompt_tokens"] is not None
                else ""
            )
            message = (
                f"{fields['method']} {fields['path']} {fields['status']} {fields['latency_ms']}ms"
                f" model={fields['model'] or '-'}{tokens}{' stream' if exchange.stream else ''}"
                f" request_id={fields['request_id'] or '-'}"
            )
        logger.info(message, extra={"fields": fields})

    return log_request
