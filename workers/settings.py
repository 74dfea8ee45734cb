"""Configuration: environment variables (prefix ``AIDFLOW_``) over an optional TOML file.

Precedence, highest first: explicit overrides, environment, ``aidflow.toml``
(or the file named by ``AIDFLOW_CONFIG``), defaults.
"""

from __future__ import annotations

import os
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

# A worker's workflow sandbox (workers/sandbox.py; the simulator alone also has "off").
WorkerSandbox = Literal["strict", "shared"]


def _config_file() -> Path:
    return Path(os.environ.get("AIDFLOW_CONFIG", "aidflow.toml"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIDFLOW_", extra="ignore")

    data_dir: Path = Field(Path(".aidflow"), description="Where the embedded stack keeps its files")

    # Temporal
    temporal_address: str = Field(
        "localhost:7233", description="host:port of the Temporal frontend"
    )
    temporal_namespace: str = "default"
    task_queue: str = "aidflow"
    # Workflows a worker keeps in memory between their tasks (Temporal's sticky cache).
    # One evicted replays its whole history at its next task, so a season whose open
    # workflows (applications, notices, seasons, batches) outnumber it replays nearly
    # every task: the SDK's default, 1,000, was exactly the fault harness's 1,000
    # applications, without their notices.
    workflow_cache: int = Field(
        5000, ge=0, description="workflows a worker keeps cached (0: replay every task)"
    )
    # How workflow code is sandboxed (workers/sandbox.py): "shared" imports aidflow's
    # workflow modules once for every workflow; "strict" (the test suite's) re-imports
    # them for each and refuses restricted calls at run time, at 449 KiB a cached workflow.
    workflow_sandbox: WorkerSandbox = Field(
        "shared", description="strict or shared (workers/sandbox.py)"
    )
    temporal_tls_cert: Path | None = Field(None, description="client certificate (mTLS)")
    temporal_tls_key: Path | None = Field(None, description="client private key (mTLS)")
    temporal_tls_ca: Path | None = Field(None, description="server CA, if not a public one")
    temporal_api_key: SecretStr | None = Field(None, description="Temporal Cloud API key")

    # Embedded stack (aidflow up)
    ui_port: int = 8233
    grpc_port: int = 7233

    # Database: SQLite under data_dir unless given; production uses
    # postgresql+psycopg://user:password@host/db
    database_url: SecretStr | None = None

    # The deployment's secret (64 hex characters): keys the identity-number hash in
    # workflow ids and seals identity/account numbers in workflow inputs (R9).
    # Every worker and client of one deployment must share it.
    # Unset: a random one is created once in data_dir/secret.key.
    secret_key: SecretStr | None = None

    calendar: Literal["state-council", "compressed"] = "state-council"
    # The compressed (demo) calendar: calendar_base_day begins at calendar_epoch and
    # every day lasts calendar_day_seconds. Every worker and client must agree on them.
    calendar_epoch: datetime | None = None
    calendar_base_day: date | None = None
    calendar_day_seconds: float | None = None
    calendar_dir: Path | None = Field(
        None, description="extra holiday schedule files cn-YYYY.txt (default: data_dir/schedules)"
    )

    # Notifications: e-mail over SMTP, SMS through a gateway's HTTP webhook;
    # without them, messages go to the log.
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "aidflow@localhost"
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    sms_webhook_url: str | None = None
    sms_webhook_token: SecretStr | None = None

    # The agent bank: "simulated" (a bank simulator answers the files, for development
    # and demos) or "file-exchange" (outbox/inbox folders shared with the real bank).
    bank: Literal["simulated", "file-exchange"] = "simulated"
    bank_dir: Path | None = Field(None, description="outbox/inbox folders (default: data_dir/bank)")
    bank_sim_closed_suffixes: list[str] = Field(
        default_factory=list, description="simulator: accounts ending so are closed"
    )
    bank_sim_return_rate: float = 0.0
    bank_sim_delay_seconds: float = 0.0

    # Observability
    log_format: Literal["console", "json"] = "console"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # The credential the CLI acts with (R10): an office's API key.
    api_key: SecretStr | None = Field(None, description="the CLI's credential (API key)")
    api_url: str | None = Field(
        None,
        description="the HTTP API the CLI sends requests to (default http://API_HOST:API_PORT)",
    )
    # The HTTP API (R10): `aidflow serve`, and `aidflow up` beside the worker.
    api_host: str = Field("127.0.0.1", description="where the HTTP API listens")
    api_port: int = Field(8000, ge=0, le=65535, description="the HTTP API's port (0: off in up)")
    metrics_port: int | None = Field(
        9464, description="Prometheus metrics port of the worker; empty to disable"
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v

    @field_validator("metrics_port", mode="before")
    @classmethod
    def _empty_is_none(cls, v: Any) -> Any:
        # AIDFLOW_METRICS_PORT= (empty) disables the metrics endpoint, as documented.
        return None if isinstance(v, str) and not v.strip() else v

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=_config_file()),
        )

    # Derived values -------------------------------------------------------

    @property
    def effective_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.data_dir / 'aidflow.db').resolve()}"

    def build_calendar(self) -> Any:
        from store.calendars import build_calendar

        return build_calendar(
            self.calendar,
            self.effective_calendar_dir,
            epoch=self.calendar_epoch,
            base_day=self.calendar_base_day,
            day_seconds=self.calendar_day_seconds,
        )

    def channels(self) -> Any:
        from integrations.notify import Channels, LogChannel, SmtpChannel, WebhookChannel

        email = (
            SmtpChannel(
                host=self.smtp_host,
                port=self.smtp_port,
                sender=self.smtp_from,
                username=self.smtp_user,
                password=self.smtp_password.get_secret_value() if self.smtp_password else None,
                starttls=self.smtp_starttls,
            )
            if self.smtp_host
            else None
        )
        sms = (
            WebhookChannel(
                self.sms_webhook_url,
                self.sms_webhook_token.get_secret_value() if self.sms_webhook_token else None,
            )
            if self.sms_webhook_url
            else None
        )
        return Channels(log=LogChannel(), email=email, sms=sms)

    @property
    def effective_bank_dir(self) -> Path:
        return self.bank_dir or self.data_dir / "bank"

    @property
    def files_dir(self) -> Path:
        """Rosters, payout batch files and reports."""
        return self.data_dir / "files"

    @property
    def effective_calendar_dir(self) -> Path:
        return self.calendar_dir or self.data_dir / "schedules"

    @property
    def shared_database(self) -> bool:
        """A database server (PostgreSQL) that processes on several machines share: the
        production shape, where nothing may be left to a machine's own default."""
        return not self.effective_database_url.startswith("sqlite")

    def secret_key_bytes(self) -> bytes:
        if self.secret_key is not None:
            return bytes.fromhex(self.secret_key.get_secret_value())
        if self.shared_database:
            # A random key of this machine's would seal and hash otherwise than the
            # deployment's other processes: imports that never match, seals no one opens.
            raise ConfigurationError(
                "AIDFLOW_SECRET_KEY is not set: with a shared database every worker, "
                "gateway and command of the deployment must use the deployment's secret"
            )
        path = self.data_dir / "secret.key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(os.urandom(32).hex())
        return bytes.fromhex(path.read_text().strip())

    def check_bank(self) -> None:
        """With a shared database, the bank is said, never a default: the simulated
        bank answers every disbursement file "paid"."""
        if self.shared_database and "bank" not in self.model_fields_set:
            raise ConfigurationError(
                "AIDFLOW_BANK is not set: with a shared database say which bank answers "
                "the disbursement files (file-exchange for the agent bank; simulated only "
                "for a test deployment, where every payment is answered paid)"
            )

    def check_deployment(self) -> None:
        """What a worker or gateway must be given, refused before anything connects."""
        self.check_bank()
        self.secret_key_bytes()

    def masked(self) -> dict[str, Any]:
        """The effective configuration with secrets masked, for ``aidflow config show``."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "********"
            elif isinstance(value, Path):
                value = str(value)
            out[name] = value
        out["database_url (effective)"] = mask_url(self.effective_database_url)
        out["config_file"] = str(_config_file()) + ("" if _config_file().exists() else " (absent)")
        return out


class ConfigurationError(Exception):
    """A setting a deployment must give is missing; the message says which and why."""


def mask_url(url: str) -> str:
    """Hide the password of a database URL."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "********"
