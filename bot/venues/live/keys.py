"""API keys: read from the environment or a secrets directory, never from the TOML file, never logged.

A key set is named (by default after the venue or account that uses it; `live.credentials` shares one
set between a venue and an account of the same exchange account). For a set named `okx-main`:

    environment     MARGINBOT_KEY_OKX_MAIN_API_KEY, MARGINBOT_KEY_OKX_MAIN_SECRET, MARGINBOT_KEY_OKX_MAIN_PASSWORD
    secrets dir     $MARGINBOT_SECRETS_DIR/okx-main/api_key, …/secret, …/password (one value per file)

The environment wins over the directory. Every value read is registered with the log redactor, so it is
masked wherever it might appear later (an exception text, a signed URL, a notification).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from bot.errors import ConfigError
from bot.logs import register_secret

FIELDS = ("api_key", "secret", "password")
NEEDS_PASSWORD = frozenset({"okx"})  # OKX keys carry a passphrase


@dataclass(frozen=True, slots=True)
class Credentials:
    name: str
    api_key: SecretStr
    secret: SecretStr
    password: SecretStr | None = None


def env_name(key_set: str, field: str) -> str:
    return f"MARGINBOT_KEY_{re.sub(r'[^A-Za-z0-9]', '_', key_set).upper()}_{field.upper()}"


def load_credentials(
    key_set: str,
    exchange: str,
    *,
    env: Mapping[str, str] | None = None,
    secrets_dir: str | Path | None = None,
) -> Credentials:
    """The key set, or a ConfigError naming exactly which variables or files are missing."""
    env = os.environ if env is None else env
    directory = secrets_dir if secrets_dir is not None else env.get("MARGINBOT_SECRETS_DIR")
    found: dict[str, str] = {}
    for field in FIELDS:
        value = env.get(env_name(key_set, field))
        if not value and directory:
            path = Path(directory) / key_set / field
            if path.is_file():
                value = path.read_text(encoding="utf-8").strip()
        if value:
            found[field] = value
            register_secret(value)
    needed = ["api_key", "secret"] + (["password"] if exchange in NEEDS_PASSWORD else [])
    missing = [f for f in needed if f not in found]
    if missing:
        where = " and ".join(env_name(key_set, f) for f in missing)
        files = ", ".join(missing)
        hint = f" or files {files} in $MARGINBOT_SECRETS_DIR/{key_set}/"
        raise ConfigError(f"credentials {key_set!r} ({exchange}): set {where}{hint}")
    pw = found.get("password")
    return Credentials(
        key_set, SecretStr(found["api_key"]), SecretStr(found["secret"]), SecretStr(pw) if pw else None
    )
