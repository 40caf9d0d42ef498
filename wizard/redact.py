"""Credentials never shown: `user:password@` in a URL becomes `***@` wherever modelwiz prints or logs
a URL (HF_ENDPOINT may carry a mirror's credentials, a proxy URL too)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

REDACTED = "***"
# scheme://userinfo@ inside any text (an exception message that quotes a URL)
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/\s@]+)@")


def redact_url(url: str) -> str:
    """`http://u:p@host:1/x` -> `http://***@host:1/x`; a URL without credentials is returned as is."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{REDACTED}@{host}"))


def redact_host(url: str) -> str:
    """The host[:port] of `url`, without credentials."""
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        return redact_text(url)
    return netloc.rsplit("@", 1)[-1] or redact_text(url)


def redact_text(text: str) -> str:
    """Every `scheme://user:pass@` in `text` with the credentials replaced."""
    return _USERINFO.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)
