"""Locks: a method decorator for objects shared by a Streamlit process's sessions, and one writer per workspace."""

from __future__ import annotations

import fcntl
import functools
import threading
from pathlib import Path


def locked(method):
    """Run ``method`` under ``self._lock``; e.g. a sqlite connection shared by every session's thread."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper


class FolderLock:
    """One writer at a time per workspace folder, re-entrant.

    Shared by every ``Workspace`` object on the folder in this process (sessions that pick another
    embedding runtime get their own object on the same index), and held against other processes with
    ``flock`` on ``<folder>/.write.lock`` (the CLI beside the app, on a Milvus server). A writer's
    ids sit in the catalog's journal until it records them, so another writer's repair must not run
    in between.
    """

    _registry: dict[str, FolderLock] = {}
    _registry_lock = threading.Lock()

    def __init__(self, path: Path):
        self._path = path
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._file = None

    @classmethod
    def for_folder(cls, folder: Path) -> FolderLock:
        key = str(Path(folder).resolve())
        with cls._registry_lock:
            if key not in cls._registry:
                cls._registry[key] = cls(Path(key) / ".write.lock")
            return cls._registry[key]

    def __enter__(self) -> FolderLock:
        self._thread_lock.acquire()
        try:
            if self._depth == 0:
                self._file = self._path.open("a")
                fcntl.flock(self._file, fcntl.LOCK_EX)
        except BaseException:
            if self._file is not None:
                self._file.close()
                self._file = None
            self._thread_lock.release()
            raise
        self._depth += 1
        return self

    def __exit__(self, *exc) -> None:
        self._depth -= 1
        if self._depth == 0:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        self._thread_lock.release()
