"""JSON logs on stdout, one object per line, with the service name on every record and no credentials."""

import logging
import re
import sys

from pythonjsonlogger.json import JsonFormatter

# Query parameters that carry credentials: `?token=` (the event stream's old way), `?ticket=`, Meta's
# `hub.verify_token`, and anything else named like a token, secret, password or signature.
_CREDENTIAL = re.compile(
    r"([?&;](?:[\w.\-]*token|ticket|[\w.\-]*secret|password|[\w.\-]*signature)=)[^&;\s\"'#]+", re.IGNORECASE
)
REDACTED = "[redacted]"


class RedactCredentials(logging.Filter):
    """Blanks credentials in URLs a log line holds (uvicorn's access log prints each request's query string)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = _CREDENTIAL.sub(rf"\1{REDACTED}", message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "asctime": "time"},
            static_fields={"service": service},
        )
    )
    handler.addFilter(RedactCredentials())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiormq", "aio_pika", "pymongo", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
