"""Source API keys as strings: making, hashing and checking them. Pure, no database.

A key is `<prefix>.<secret>`. The prefix (public, shown in the admin) finds the stored
row; the secret carries 256 random bits, so a fast hash is as safe as a slow one and
keeps every bot request cheap.
"""

import hashlib
import hmac
import re
import secrets

PREFIX_BYTES = 6
SECRET_BYTES = 32
PREFIX_PATTERN = re.compile(f"[0-9a-f]{{{2 * PREFIX_BYTES}}}")


def new_key() -> str:
    return f"{secrets.token_hex(PREFIX_BYTES)}.{secrets.token_urlsafe(SECRET_BYTES)}"


def prefix_of(key: str) -> str | None:
    """The key's prefix, or None when `key` does not have the shape of one."""
    prefix, dot, secret = key.partition(".")
    if not dot or not secret or not PREFIX_PATTERN.fullmatch(prefix):
        return None
    return prefix


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_matches(key: str, key_hash: str) -> bool:
    # Constant time, so response times say nothing about how much of a guess was right.
    return hmac.compare_digest(hash_key(key), key_hash)
