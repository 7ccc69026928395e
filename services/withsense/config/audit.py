"""The compliance audit log: the secret salt of its query hashes."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class AuditSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WITHSENSE_AUDIT_", extra="ignore")

    salt: SecretStr = Field(
        default=SecretStr(""),
        description="Secret mixed into the audit log's query hashes, so that a hash cannot be "
        "confirmed by hashing guessed queries. Prefer salt_file (a mounted secret).",
    )
    salt_file: Path | None = Field(
        default=None,
        description="A mounted secret whose content is the salt (lines starting with '#' and "
        "surrounding whitespace are ignored; an empty file means no salt); wins over "
        "WITHSENSE_AUDIT_SALT.",
    )

    def load_salt(self) -> str:
        """The salt from salt_file, else from salt; a clear error naming the file if unreadable."""
        if self.salt_file is None:
            return self.salt.get_secret_value()
        try:
            lines = Path(self.salt_file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"WITHSENSE_AUDIT_SALT_FILE {self.salt_file}: {exc}") from exc
        return "\n".join(line for line in lines if not line.startswith("#")).strip()
