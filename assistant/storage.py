"""Where uploaded images live: MEDIA_ROOT, random names, never a user-chosen path."""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings

from .safety.images import new_storage_name

UPLOAD_DIR = "uploads"


def _root() -> Path:
    return Path(settings.MEDIA_ROOT)


def path(relative: str) -> Path:
    full = (_root() / relative).resolve()
    # Names come from save_new only, but a path that escapes the root is refused anyway.
    if _root().resolve() not in full.parents:
        raise ValueError("path outside MEDIA_ROOT")
    return full


def save_new(data: bytes, extension: str) -> str:
    """Write bytes under a fresh random name and return the path relative to MEDIA_ROOT."""
    folder = _root() / UPLOAD_DIR
    folder.mkdir(parents=True, exist_ok=True)
    # Lowercase base32: no leading '-' or '.', no names that differ only in case.
    relative = f"{UPLOAD_DIR}/{new_storage_name(extension)}"
    full = _root() / relative
    # O_EXCL: never overwrite, even in the astronomically unlikely case of a name clash.
    fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return relative


def delete(*relatives: str) -> None:
    for relative in relatives:
        if relative:
            path(relative).unlink(missing_ok=True)
