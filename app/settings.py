"""Runtime settings, read from ``ENGINE_*`` environment variables (DESIGN §2)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: Room a link frame needs around the largest document it carries (the response
#: envelope, the change's id, type, version and sequence).
LINK_ENVELOPE_BYTES = 16 * 1024


class Settings(BaseSettings):
    """Every knob of one engine process; the role follows from ``edge_id``."""

    model_config = SettingsConfigDict(
        env_prefix="ENGINE_", env_file=".env", extra="ignore", frozen=True
    )

    edge_id: str | None = None
    master_url: str | None = None
    edge_secret: str | None = Field(default=None, repr=False)
    database_url: str = "sqlite:///./data/engine.db"
    public_url: str | None = None
    admin_token: str | None = Field(default=None, repr=False)
    drivers_path: Path = Path("./data/drivers")
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    client_routing: Literal["redirect", "proxy"] = "redirect"
    cors_origins: Annotated[list[str], NoDecode] = []
    link_retry_s: float = Field(default=3.0, gt=0)
    boot_wait_s: float = Field(default=6.0, ge=0)
    ping_interval_s: float = Field(default=1.0, gt=0)
    link_max_frame: int = Field(default=1024 * 1024, gt=0)
    max_document_bytes: int = Field(default=256 * 1024, gt=0)
    tombstone_retention_s: float = Field(default=7 * 24 * 3600.0, gt=0)
    housekeeping_interval_s: float = Field(default=3600.0, gt=0)
    control_events_max: int = Field(default=1000, ge=1)
    control_events_max_age_s: float = Field(default=90 * 24 * 3600.0, gt=0)
    request_timeout_s: float = Field(default=10.0, gt=0)
    witness_timeout_s: float = Field(default=2.0, gt=0)
    tls_expiry_warning_s: float = Field(default=14 * 24 * 3600.0, ge=0)
    ws_ping_interval_s: float = Field(default=20.0, gt=0)
    status_keepalive_s: float = Field(default=3.0, gt=0)
    #: The active master's lease in etcd (whole seconds, as etcd grants them).
    master_lease_s: int = Field(default=10, ge=2)
    link_url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator(
        "edge_id", "master_url", "edge_secret", "public_url", "admin_token", "link_url"
    )
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @model_validator(mode="after")
    def _documents_fit_the_link(self) -> Settings:
        """Every document the API accepts must travel in one link frame, envelope included."""
        needed = self.max_document_bytes + LINK_ENVELOPE_BYTES
        if self.link_max_frame < needed:
            raise ValueError(
                f"ENGINE_LINK_MAX_FRAME ({self.link_max_frame}) must be at least "
                f"ENGINE_MAX_DOCUMENT_BYTES ({self.max_document_bytes}) + {LINK_ENVELOPE_BYTES} "
                "bytes of envelope, or the largest document could never be replicated"
            )
        return self

    @property
    def is_edge(self) -> bool:
        return self.edge_id is not None

    @property
    def node_name(self) -> str:
        """The value of the ``X-Engine-Node`` header."""
        return f"edge:{self.edge_id}" if self.edge_id else "master"

    @property
    def base_url(self) -> str:
        """Where clients reach this server (used in redirects and discovery)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        scheme = "https" if self.tls_cert else "http"
        return f"{scheme}://{self.host}:{self.port}"


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, with explicit overrides winning."""
    return Settings(**overrides)  # type: ignore[arg-type]
