"""The API key from a Prefect Secret block, for runs on workers that hold no environment key."""

from __future__ import annotations

from prefect.blocks.system import Secret
from pydantic import SecretStr

from pipelines.core.settings import Settings


async def settings_with_secret(settings: Settings, block_name: str | None) -> Settings:
    """Settings whose API key comes from the named Prefect Secret block, when one is named."""
    if block_name is None:
        return settings
    secret: Secret = await Secret.aload(block_name)  # type: ignore[assignment]
    return settings.model_copy(update={"api_key": SecretStr(str(secret.get()))})
