"""Personal identifiers never pass the landing zone raw.

`hash` replaces a value with HMAC-SHA256 under the warehouse's key (so joins across feeds
still work), `drop` removes the column, `year` coarsens a birth date to its year. The HMAC is
computed inside DuckDB (vectorised), exactly as RFC 2104 defines it:
H((K ^ opad) || H((K ^ ipad) || m)).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from transforms import settings

KEY_ENV = "QALA_PSEUDONYMISATION_KEY"
_BLOCK = 64


def key_file(root: Path | None = None) -> Path:
    return settings.state_dir(root) / "secrets" / "pseudonymisation.key"


def hmac_key(root: Path | None = None) -> bytes:
    """The key from the environment, or the warehouse's dev key (generated on first use,
    readable only by its owner, never in git)."""
    if os.environ.get(KEY_ENV):
        return os.environ[KEY_ENV].encode("utf-8")
    path = key_file(root)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text().strip().encode("utf-8")


def _blob_literal(data: bytes) -> str:
    return "'" + "".join(f"\\x{b:02X}" for b in data) + "'::blob"


def hmac_sql(expression: str, key: bytes) -> str:
    """SQL for the lower-case hex HMAC-SHA256 of a text expression (NULL stays NULL)."""
    import hashlib

    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\x00")
    inner = _blob_literal(bytes(b ^ 0x36 for b in key))
    outer = _blob_literal(bytes(b ^ 0x5C for b in key))
    return f"sha256({outer} || unhex(sha256({inner} || encode({expression}))))"


def treated_sql(column: str, typed_expression: str, treatment: str | None, key: bytes) -> str | None:
    """The expression that reaches silver for a column (None when the column is dropped)."""
    if treatment is None:
        return typed_expression
    if treatment == "hash":
        return hmac_sql(f"cast({typed_expression} as varchar)", key)
    if treatment == "year":
        return f"year({typed_expression})"
    return None
