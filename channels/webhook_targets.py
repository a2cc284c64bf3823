"""``config/webhooks.yaml``: the systems a journey's ``webhook`` step may call (``channels.webhook``).

Kept apart from the HTTP client so that validating journeys reads it without loading one. The file
is read like every other settings file, by ``engine.language.webhook_config`` (YAML bounded, aliases
refused, problems at file:line): ``channels`` may import only ``store``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

EnvName = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$")]


class WebhookTarget(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url_env: EnvName
    secret_env: EnvName
    description: str = ""


class WebhooksConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    targets: dict[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_]*$", max_length=32)], WebhookTarget] = Field(
        default_factory=dict)


class WebhookConfigError(ValueError):
    pass
