"""``config/webhooks.yaml``: the systems a journey's ``webhook`` step may call (``channels.webhook``).

Kept apart from the HTTP client so that validating journeys reads it without loading one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

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


def load_webhooks(path: Path) -> WebhooksConfig:
    """``config/webhooks.yaml``; a missing file declares no target. Raises ``WebhookConfigError``
    naming the file (and the line of the YAML error)."""
    if not path.is_file():
        return WebhooksConfig()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return WebhooksConfig.model_validate(data)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise WebhookConfigError(f"{path.name}{line}: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise WebhookConfigError(f"{path.name}: {where}: {first['msg']}") from None


