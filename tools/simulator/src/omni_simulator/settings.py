"""Where `python -m omni_simulator` listens: SIMULATOR_HOST and SIMULATOR_PORT."""

from pydantic_settings import BaseSettings, SettingsConfigDict


class SimulatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIMULATOR_", extra="ignore", case_sensitive=False)

    host: str = "127.0.0.1"
    port: int = 8090
    log_level: str = "INFO"
