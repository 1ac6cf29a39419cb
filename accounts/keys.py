"""API key format and hashing: no Django here, so it is easy to test and reuse."""

import hashlib
import hmac
import secrets

KEY_PREFIX = "glk_"


def generate_key() -> tuple[str, str]:
    """Return (raw_key, prefix)."""
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    return f"{KEY_PREFIX}{prefix}_{secret}", prefix


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def split_prefix(raw_key: str) -> str | None:
    if not raw_key.startswith(KEY_PREFIX):
        return None
    prefix, sep, secret = raw_key[len(KEY_PREFIX) :].partition("_")
    if not sep or len(prefix) != 8 or not secret:
        return None
    return prefix


def key_matches(raw_key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(raw_key), stored_hash)
