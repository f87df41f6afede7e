"""The secrets of a warehouse's Airflow, created on first use and kept in the warehouse's state
(never in git), readable by their owner only: the API's JWT secret, the Fernet key of connections,
and the admin password of the embedded Airflow's simple auth manager.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from transforms import settings

ADMIN = "admin"


def airflow_home(root: Path) -> Path:
    return settings.state_dir(root) / "airflow"


def secret(root: Path, name: str, make) -> str:
    path = settings.state_dir(root) / "secrets" / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(make())
    return path.read_text().strip()


def passwords_file(root: Path) -> Path:
    return airflow_home(root) / "simple_auth_manager_passwords.json.generated"


def admin_password(root: Path) -> str:
    return json.loads(passwords_file(root).read_text())[ADMIN]


def create_admin_password(root: Path) -> str | None:
    """The admin password, made and kept if the warehouse has none yet (returned, to be shown
    once); None if it exists already."""
    if passwords_file(root).exists():
        return None
    created = secrets.token_urlsafe(12)
    passwords_file(root).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(passwords_file(root), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({ADMIN: created}, handle)
    return created
