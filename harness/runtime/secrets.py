"""Secrets kept out of what the harness prints and records: a URL's user:password@ masked wherever it appears."""

from __future__ import annotations

import re

URL = re.compile(r"[A-Za-z][\w+.-]*://[^\s'\"]+")


def masked_userinfo(text: str) -> str:
    """`text` with the user:password@ of every URL in it replaced by ***@ (a storage URL or a store URL given
    with credentials, echoed in an error)."""
    return URL.sub(_masked, text)


def _masked(match: re.Match) -> str:
    scheme, _, rest = match.group(0).partition("://")
    authority = rest.split("/", 1)[0]
    # A secret written raw may hold '/' (AWS secret keys often do): where the part before the first '/'
    # looks like user:password (a ':' or an '@'), everything up to the LAST '@' is masked; an '@' only
    # in the path of a plain URL (s3://bucket/team@2026/) is not a secret.
    if "@" not in rest or not (":" in authority or "@" in authority):
        return match.group(0)
    return f"{scheme}://***@{rest.rpartition('@')[2]}"
