"""A rerank server's URL: the endpoint for an API shape, and credentials kept out of what is shown.

Credentials in the URL become a Basic Authorization header; the URL that is requested, shown and put
in errors never carries them. The user info is read from the raw text, not a URL parser's view of it.
"""

from __future__ import annotations

import base64
import re
from urllib.parse import unquote, urlparse

API_PATHS = {"rerank": "/v1/rerank", "score": "/score", "infinity": "/rerank"}


def _split_userinfo(url: str) -> tuple[str, str | None]:
    """(``url`` without its user info, the user info or None), read from the raw text.

    A password may hold "#" or "?" unencoded, which end the authority for a URL parser and would leave
    the rest of the password in the fragment or query; the user info is whatever precedes the last "@"
    before the first "/" after the scheme.
    """
    url = url.strip()
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url, None
    slash = rest.find("/")
    at = rest.rfind("@", 0, slash if slash >= 0 else len(rest))
    if at < 0:
        return url, None
    return f"{scheme}://{rest[at + 1 :]}", rest[:at]


def redact_url(url: str) -> str:
    """``url`` fit to show: no user name or password, no query values (a key may ride there), no fragment."""
    bare, userinfo = _split_userinfo(url)
    try:
        parsed = urlparse(bare)
        parsed.port  # noqa: B018 (raises on a port that is not a number, e.g. the tail of a mangled password)
    except ValueError:
        return f"{bare.partition('://')[0] or 'a URL'}://(an address that could not be read)"
    netloc = ("***@" if userinfo is not None else "") + parsed.netloc
    query = "&".join(f"{part.split('=', 1)[0]}=***" if "=" in part else part for part in parsed.query.split("&"))
    return parsed._replace(netloc=netloc, query=query if parsed.query else "", fragment="").geturl()


def split_credentials(url: str) -> tuple[str, str | None]:
    """(``url`` without user and password, a Basic Authorization header value or None)."""
    bare, userinfo = _split_userinfo(url)
    if userinfo is None:
        return bare, None
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode()
    return bare, f"Basic {token}"


def endpoint_url(url: str, api: str) -> str:
    """The endpoint for ``api`` under the server's base ``url``.

    ``http://host:8000`` and ``http://host:8000/v1`` give ``http://host:8000/v1/rerank`` for the rerank
    API; a URL that already ends with ``/rerank`` or ``/score`` is used as it is.
    """
    if api not in API_PATHS:
        raise ValueError(f"unknown rerank server API {api!r}; use one of {', '.join(API_PATHS)}")
    try:
        parsed = urlparse(url.strip())
        parsed.port  # noqa: B018 (a port that is not a number raises here, not in the first request)
    except ValueError:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(
            f"rerank server URL must start with http:// or https:// and name a host and port, got {redact_url(url)!r}"
            " (a password with '/', '#' or '?' must be percent-encoded)"
        )
    base = parsed.path.rstrip("/")
    if re.search(r"/(rerank|score)$", base):
        return parsed._replace(path=base).geturl()
    path = API_PATHS[api]
    if base.endswith("/v1") and path.startswith("/v1/"):
        path = path[3:]
    return parsed._replace(path=base + path).geturl()  # a query string stays after the path
