"""Personal identifiers never pass the landing zone raw.

`hash` replaces a value with HMAC-SHA256 under the warehouse's key (so joins across feeds
still work), `drop` removes the column, `year` coarsens a birth date to its year. The HMAC is
computed inside DuckDB (vectorised), exactly as RFC 2104 defines it:
H((K ^ opad) || H((K ^ ipad) || m)).

The key can be rotated (`qala rekey`, transforms/rekey.py). While a rotation runs, its state file
names the new key by fingerprint, and a load under any other key is refused (`check_key`, at the
start of a batch and again inside its publish transaction), so nothing is published under the
key being retired. After a rotation the warehouse's key is pinned by its fingerprint: a process
still holding the old key (an environment not yet updated) is refused instead of publishing
hashes that no longer join.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

from transforms import settings

KEY_ENV = "QALA_PSEUDONYMISATION_KEY"
# The key an operator rotates an environment-held key to (`qala rekey`, see transforms/rekey.py).
NEXT_KEY_ENV = "QALA_PSEUDONYMISATION_KEY_NEXT"
_BLOCK = 64


class KeyRefused(RuntimeError):
    """A load's key is not the one the warehouse's data is (being) keyed under."""


def key_file(root: Path | None = None) -> Path:
    return settings.state_dir(root) / "secrets" / "pseudonymisation.key"


def next_key_file(root: Path | None = None) -> Path:
    """The new key of a rotation in progress (file-held keys only)."""
    return key_file(root).with_name("pseudonymisation.key.next")


def rotation_file(root: Path | None = None) -> Path:
    """A rotation in progress: its run id, mode and the new key's fingerprint (never the key)."""
    return key_file(root).with_name("pseudonymisation.rotation.json")


def pin_file(root: Path | None = None) -> Path:
    """The fingerprint of the key the warehouse's data is keyed under, written by a rotation."""
    return key_file(root).with_name("pseudonymisation.fingerprint")


def fingerprint(key: bytes) -> str:
    """Names a key without revealing it: an HMAC of a fixed text under the key."""
    return hmac.new(key, b"qala pseudonymisation key fingerprint", hashlib.sha256).hexdigest()[:16]


def write_secret(path: Path, text: str) -> None:
    """Create a file readable by its owner only, durably (a rotation resumes from it after a crash);
    never overwrites."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def rotation(root: Path | None = None) -> dict | None:
    path = rotation_file(root)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def configured_key(root: Path | None = None) -> bytes:
    """The key from the environment, or the warehouse's dev key (generated on first use,
    readable only by its owner, never in git); not checked."""
    if os.environ.get(KEY_ENV):
        return os.environ[KEY_ENV].encode("utf-8")
    path = key_file(root)
    if not path.exists():
        try:
            write_secret(path, secrets.token_hex(32))
        except FileExistsError:  # another process created it first
            pass
    return path.read_text().strip().encode("utf-8")


def check_key(key: bytes, root: Path | None = None) -> None:
    """Refuse a key other than the one being rotated to (during a rotation) or the one the
    warehouse was last rotated to (its pin)."""
    state = rotation(root)
    if state is not None:
        if fingerprint(key) != state["new_fingerprint"]:
            raise KeyRefused(
                f"a pseudonymisation key rotation ({state['run_id']}) is in progress on this warehouse: loads are "
                f"refused until `qala rekey` completes it (run it again to resume); then load again")
        return
    pin = pin_file(root)
    if pin.exists() and fingerprint(key) != pin.read_text().strip():
        raise KeyRefused(
            f"this process's pseudonymisation key (fingerprint {fingerprint(key)}) is not the warehouse's "
            f"(fingerprint {pin.read_text().strip()}, {pin}): after `qala rekey`, {KEY_ENV} and the Airflow "
            f"connection qala_pseudonymisation must hold the new key")


def hmac_key(root: Path | None = None) -> bytes:
    """The key a load hashes with (`configured_key`), refused when it is not the warehouse's."""
    key = configured_key(root)
    check_key(key, root)
    return key


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
