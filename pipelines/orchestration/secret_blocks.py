"""Secrets from Prefect Secret blocks (the API key, the state URL), for runs on workers that hold
no environment for them; a flow takes a block's name, never the secret."""

from __future__ import annotations

from prefect.blocks.system import Secret
from pydantic import SecretStr

from pipelines.core.settings import Settings
from pipelines.core.state_location import StateLocation


async def settings_with_secret(
    settings: Settings, block_name: str | None, state_block: str | None = None
) -> Settings:
    """Settings whose API key (``block_name``) and state URL (``state_block``) come from the
    named Prefect Secret blocks, when named."""
    update: dict[str, SecretStr] = {}
    if block_name is not None:
        update["api_key"] = await _secret(block_name)
    if state_block is not None:
        update["state_url"] = await _secret(state_block)
        StateLocation.parse(update["state_url"])  # ValueError: not a state URL (never shown)
    return settings.model_copy(update=update) if update else settings


async def _secret(name: str) -> SecretStr:
    secret: Secret = await Secret.aload(name)  # type: ignore[assignment]
    return SecretStr(str(secret.get()))
