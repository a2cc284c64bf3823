"""``config/webhooks.yaml`` (``channels.webhook_targets``) read as the other settings files are: through
``engine.language.yaml_lines`` (size, depth and nodes bounded, aliases refused), each problem at its
file:line. It was read with a plain ``yaml.safe_load``, which a billion-laughs alias chain in it could
keep busy for minutes.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from channels.webhook_targets import WebhookConfigError, WebhooksConfig
from engine.language.paths import config_dir
from engine.language.problems import Problem, load_config


def webhooks_path() -> Path:
    return config_dir() / "webhooks.yaml"


def webhook_problems(path: Path | None = None) -> list[Problem]:
    """What ``journeys validate`` reports of the file (none when it is absent: no target is declared)."""
    return load_config(WebhooksConfig, path or webhooks_path(), optional=True)[1]


def load_webhooks(path: Path | None = None) -> WebhooksConfig:
    """The file's targets; a missing file declares none. Raises ``WebhookConfigError`` with its problems."""
    config, problems = load_config(WebhooksConfig, path or webhooks_path(), optional=True)
    if config is None:
        raise WebhookConfigError("\n".join(str(p) for p in problems))
    return config


def webhook_descriptions() -> dict[str, str]:
    """Each target's ``description`` (中文 / English) as the file holds it now, read once per change of the
    file: the console words every webhook event it shows by it, which must not read the file per row."""
    path = webhooks_path()
    try:
        stat = path.stat()
    except OSError:
        return {}
    return _descriptions(path, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=4)
def _descriptions(path: Path, _mtime_ns: int, _size: int) -> dict[str, str]:
    try:
        targets = load_webhooks(path).targets
    except WebhookConfigError:  # validate reports the file; the pages still name each target
        return {}
    return {name: spec.description for name, spec in targets.items() if spec.description}
