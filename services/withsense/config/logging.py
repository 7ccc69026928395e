"""Process log level."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LOG_LEVELS: tuple[str, ...] = LogLevel.__args__
# Servers log their start, thresholds and failures at INFO; client commands print their own
# results and only need warnings. The compliance audit log ignores both (see
# withsense.compliance.audit).
SERVER_LOG_LEVEL: LogLevel = "INFO"
CLIENT_LOG_LEVEL: LogLevel = "WARNING"


class LoggingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WITHSENSE_", extra="ignore")

    log_level: LogLevel | None = Field(
        default=None,
        description="Level of the process log (DEBUG, INFO, WARNING, ERROR, CRITICAL). Empty: "
        "INFO for `withsense serve` (worker, gateway, all), WARNING for the other commands. `--log-level` "
        "wins. The compliance audit log is written at every level.",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        if isinstance(value, str):
            return value.strip().upper() or None
        return value
