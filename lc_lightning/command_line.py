"""The lc-train command line as given, before the parser reads it: option values, and the config files it
names, checked so that a malformed one gets one line naming the file, line and column."""

from collections.abc import Sequence
from pathlib import Path

from lc_lightning.errors import InvalidArgumentError
from lc_lightning.sweep.grid import KNOWN_SECTIONS, read_yaml


def option_value(args: Sequence[str], option: str) -> str | None:
    """The value the last ``option VALUE`` or ``option=VALUE`` of ``args`` gives, None without one."""
    value = None
    for index, arg in enumerate(args):
        if arg.startswith(f"{option}="):
            value = arg.partition("=")[2]
        elif arg == option and index + 1 < len(args):
            value = args[index + 1]
    return value


def check_config_files(args: Sequence[str]) -> None:
    """Raise InvalidArgumentError naming the file, line and column where a ``--config`` file of
    ``args``, or a config file one of them names as a value, is not valid YAML, and naming a
    ``--config`` file that is empty, no mapping of options, or an lc-sweep grid file. Missing files
    are left to the parser."""
    for path in config_paths(args):
        document = _check_yaml(path, set())
        if path.is_file():
            _check_config_mapping(path, document)


def _check_config_mapping(path: Path, document) -> None:
    if isinstance(document, dict) and "grid" in document and set(document) <= KNOWN_SECTIONS:
        raise InvalidArgumentError(
            f"{path} is an lc-sweep grid file ({', '.join(sorted(document))}), not an lc-train config: "
            f"run its grid with lc-sweep {path}"
        )
    if document is None:
        raise InvalidArgumentError(f"{path} is empty: an lc-train config is a mapping of options (model:, data:...)")
    if not isinstance(document, dict):
        kind = "a list" if isinstance(document, list) else f"the single value {document!r}"
        raise InvalidArgumentError(
            f"{path} holds {kind}, not a mapping of options (model:, data:...) as an lc-train config does"
        )


def _check_yaml(path: Path, seen: set[Path]):
    """The YAML document in ``path`` (None where it is not a file or was seen), after the files it names."""
    if path in seen or not path.is_file():
        return None
    seen.add(path)
    document = read_yaml(path)
    for value in _strings(document):
        if value.endswith((".yaml", ".yml")):
            _check_yaml(path.parent / value, seen)
    return document


def config_paths(args: Sequence[str]) -> list[Path]:
    """The files the ``--config`` (or ``-c``) options of ``args`` name, in order."""
    return [path for _, path in config_arguments(args)]


def config_arguments(args: Sequence[str]) -> list[tuple[int, Path]]:
    """The index in ``args`` of the last word of each ``--config FILE``, ``-c FILE`` or ``--config=FILE``,
    and the FILE it names."""
    found = []
    for index, arg in enumerate(args):
        if index > 0 and args[index - 1] in ("--config", "-c"):
            found.append((index, Path(arg)))
        elif arg.startswith("--config="):
            found.append((index, Path(arg.partition("=")[2])))
    return found


def _strings(document) -> list[str]:
    if isinstance(document, str):
        return [document]
    if isinstance(document, dict):
        return [text for value in document.values() for text in _strings(value)]
    if isinstance(document, list):
        return [text for value in document for text in _strings(value)]
    return []
