"""Values in a run's config (lc_lightning.run_directory.RunDirectory.config, a nested dict)."""

from typing import Any


def config_value(config: dict, key: str, default: Any = None) -> Any:
    """The value of the dotted ``key`` (``model.network.init_args.expansion``) in the nested
    ``config``, ``default`` where some part of the path is missing."""
    value: Any = config
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return default
        value = value[part]
    return value
