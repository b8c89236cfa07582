"""Log filters the settings' LOGGING names."""

import logging


class RefusedHost(logging.Filter):
    """A request for a host not in ALLOWED_HOSTS is a scan or a misdirected client, not
    our error: one warning line, without Django's traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True
