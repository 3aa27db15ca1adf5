"""Keep secrets (API keys) out of every message, log line and traceback."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

MASK = "REDACTED"

# key=... in any URL or message, whatever the key is
_KEY_PARAM = re.compile(r"(?i)\b(key|api_key|apikey|signature|client)=([^&\s'\"]+)")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with every secret and every ``key=`` value masked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return _KEY_PARAM.sub(lambda m: f"{m.group(1)}={MASK}", text)


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in each record's final message."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: the handler reports it, as logging does
            return True
        cleaned = redact(message, self.secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
