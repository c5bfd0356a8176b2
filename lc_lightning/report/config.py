"""Reading a run's config.yaml (the complete lc-train config lc-sweep wrote for it)."""

from pathlib import Path
from typing import Any

import yaml

from lc_lightning.sweep.directory import CONFIG_FILE


def read_config(run_dir: Path) -> dict:
    """The run's config.yaml as a nested dict; {} where there is none or it is not a YAML mapping."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        return {}
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        return {}
    return config if isinstance(config, dict) else {}


def config_value(config: dict, key: str, default: Any = None) -> Any:
    """The value of the dotted ``key`` (``model.network.init_args.expansion``) in the nested
    ``config``, ``default`` where some part of the path is missing."""
    value: Any = config
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return default
        value = value[part]
    return value
