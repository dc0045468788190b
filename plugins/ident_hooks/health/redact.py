"""Error texts fit to show: secrets replaced by ``***``, one line, a bounded length.

Our HTTP client already redacts its connection's secret (``http_client.ServiceClient``);
this also covers errors raised elsewhere: Airflow's own masker (every connection password
and secret-looking extra a task fetched is registered with it), then the usual spellings of
a credential in a message — a URL's user info, ``Bearer``/``token``/``key``/``password``
values.
"""

from __future__ import annotations

import re

REDACTED = "***"
MAX_CHARS = 500
_PATTERNS = (
    re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"),  # scheme://user:password@host
    re.compile(r"(?i)(?<=bearer )[A-Za-z0-9._~+/=-]{6,}"),
    re.compile(
        r"(?i)(?<![a-z])((?:access_?|api_?|auth_?|bot)?(?:token|key|secret|password|passwd|pwd)"
        r"[\"']?\s*[=:]\s*[\"']?)[^\s\"'&,;}]+"
    ),
    re.compile(r"(?<=/bot)\d+:[A-Za-z0-9_-]{10,}"),  # a Telegram bot token in a URL
)


def redact(text: str | None) -> str | None:
    """``text`` with secrets replaced, whitespace collapsed and cut to :data:`MAX_CHARS`."""
    if text is None:
        return None
    try:
        from airflow.sdk.log import redact as airflow_redact

        text = str(airflow_redact(text))
    except ImportError:  # outside Airflow (a script): only the patterns below
        pass
    for pattern in _PATTERNS:
        text = pattern.sub(
            lambda match: (match.group(1) if match.re.groups else "") + REDACTED, text
        )
    text = " ".join(text.split())
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 1] + "…"
