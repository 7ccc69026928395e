"""Configuration, one module per domain. Every field reads from the environment with the
`WITHSENSE_` prefix (e.g. `WITHSENSE_DATA_DIR`); CLI flags override them where it makes sense."""

from withsense.config.audit import AuditSettings
from withsense.config.gateway import GatewaySettings
from withsense.config.logging import LoggingSettings
from withsense.config.model import ModelSettings
from withsense.config.store import StoreSettings
from withsense.config.worker import WorkerSettings

__all__ = ["AuditSettings", "GatewaySettings", "LoggingSettings", "ModelSettings", "StoreSettings",
           "WorkerSettings"]
