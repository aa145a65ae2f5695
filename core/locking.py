"""A method decorator for objects that one Streamlit process shares across its sessions' threads."""

from __future__ import annotations

import functools


def locked(method):
    """Run ``method`` under ``self._lock``; e.g. a sqlite connection shared by every session's thread."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper
