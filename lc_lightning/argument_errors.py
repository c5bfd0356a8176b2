"""One-line messages for what lc-train's parser rejects: unknown options and class names with
"did you mean", values outside their choices or range or of the wrong type (a list for one value),
missing and malformed config files (a grid file of lc-sweep among them), a directory as --ckpt_path.

jsonargparse reports these as multi-line texts (nested "Parser key" blocks, Union alternatives);
``explain`` condenses such a text into the one line that names the option and what to do.
"""

import difflib
import importlib
import inspect
import re
from argparse import ArgumentError, ArgumentParser, _SubParsersAction
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import torch
import yaml
from torch import nn

from lc_lightning import data, models
from lc_lightning.errors import InvalidArgumentError
from lc_lightning.run_directory import CHECKPOINT_DIR, CONFIG_FILE, LAST_CHECKPOINT
from lc_lightning.sweep.grid import KNOWN_SECTIONS

_PARSER_KEY = re.compile(r'Parser key "([^"]+)"')
_CLASS_PATH = re.compile(r"class_path[=:]? ?'([\w.]+)'")
_NOT_ACCEPTED = re.compile(r"Option '([^']+)' is not accepted")
_LITERAL = re.compile(r"Literal\[([^\]]*)\]")
_GOT_VALUE = re.compile(r"(?:Got|Given) value: ([^\n]*?)(?:\. Got value:|$)", re.MULTILINE)
_RESTRICTION = re.compile(r"Not of type \w+: (\S+) does not conform to restriction (.+?)(?:\. Got value:|$)", re.M)
_EXPECTED_TYPE = re.compile(r"Expected a <class '(\w+)'>\. Got value: (.*?)(?:\. Got value:|$)", re.MULTILINE)
_NOT_A_NUMBER = re.compile(r"could not convert string to (\w+): '([^']*)'")
_MISSING_FILE = re.compile(r"File does not exist: '([^']+)'")
_NO_CLASS = re.compile(r"Expected a dot import path string: (\S+)|module '([\w.]+)' has no attribute '(\w+)'")
_NOT_SUBCLASS = re.compile(r"Expected '([\w.]+)' to be a subclass of <class '(\w+)'>")
_INVALID_CHOICE = re.compile(r"argument (\w+): invalid choice: '([^']*)' \(choose from (.*)\)")
_NO_UNION_TYPE = "Does not validate against any of the Union subtypes"
_SUBTYPES = re.compile(r"^\s*Subtypes: \[(.*)\]$", re.MULTILINE)
_GIVEN_TYPE = re.compile(r"^\s*Given value type: <class '([\w.]+)'>$", re.MULTILINE)
_GIVEN_VALUE = re.compile(r"^\s*Given value: (.*?)(?:\. Got value:.*)?$", re.MULTILINE)
_CLASS = re.compile(r"<class '([\w.]+)'>")
_LIST_TYPES = ("list", "List", "Sequence", "Iterable", "tuple", "Tuple", "set", "Set")

# torch's optimizers, the most used first
TORCH_OPTIMIZERS = sorted(
    (
        f"torch.optim.{name}"
        for name, value in vars(torch.optim).items()
        if isinstance(value, type) and issubclass(value, torch.optim.Optimizer) and value is not torch.optim.Optimizer
    ),
    key=lambda path: path not in ("torch.optim.SGD", "torch.optim.AdamW", "torch.optim.Adam"),
)
# torch's schedules whose second argument is the run's length (RunLengthScheduleCallable)
RUN_LENGTH_SCHEDULES = ["torch.optim.lr_scheduler.CosineAnnealingLR", "torch.optim.lr_scheduler.PolynomialLR"]
# The classes a key of the config usually takes, for "did you mean" on a misspelt class or argument
KNOWN_CLASSES = {
    "model.network": [f"lc_lightning.models.{name}" for name in models.__all__],
    "data": [f"lc_lightning.data.{name}" for name in data.__all__ if name != "ImageDataModule"],
    "model.optimizer": ["lc_lightning.optim.PaperSGD", *TORCH_OPTIMIZERS],
    "model.lr_scheduler": RUN_LENGTH_SCHEDULES,
}


def explain(message: str, options: Iterable[str], classes: Mapping[str, Sequence[str]]) -> str:
    """The one-line form of a parser error ``message``.

    ``options`` are the dotted keys the command accepts (``trainer.max_epochs``,
    ``model.network.init_args.expansion``, ``model.optimizer.init_args.lr``...), for "did you
    mean" on unknown options and on ambiguous abbreviations of options;
    ``classes`` maps a key to the import paths of the classes it usually takes
    (``model.network`` -> ``lc_lightning.models.CifarResNet``...), for unknown class names.
    A message of no known form comes back with its lines joined.
    """
    options = list(options)
    if message.startswith("unrecognized arguments:"):
        unknown = [arg.split("=")[0] for arg in message.split(":", 1)[1].split() if arg.startswith("-")]
        if unknown:
            return _unknown_option(unknown[0].lstrip("-"), options)
    if message.startswith("ambiguous option:"):  # argparse takes a prefix of one option for it, not of several
        return _unknown_option(message.split(":", 1)[1].split()[0].split("=")[0].lstrip("-"), options)
    if choice := _INVALID_CHOICE.search(message):
        name, value, choices = choice.groups()
        valid = [option.strip(" '") for option in choices.split(",")]
        return f"unknown {name} {value!r}{_did_you_mean(value, valid)} (choose from {', '.join(valid)})"
    if message.startswith("Problems parsing config"):
        return "cannot read a config: " + _joined(message.split(":", 1)[1])
    keys = _PARSER_KEY.findall(message)
    if not keys:
        return _joined(message)
    key = ".init_args.".join(keys)
    option = f"--{key}"
    if missing := _MISSING_FILE.search(message):
        return f"{option}: no such file {missing.group(1)}"
    if rejected := _NOT_ACCEPTED.search(message):
        name = rejected.group(1)
        class_path = _CLASS_PATH.search(message)
        passed, parameters, what = _parameters(class_path.group(1)) if class_path else ([], [], "")
        owner = class_path.group(1).rpartition(".")[2] if class_path else key
        listing = f" (its arguments: {', '.join(parameters)})" if parameters else ""
        if name in passed:
            return f"--{key}.init_args.{name}: set by lc-train, which gives {owner} {what}{listing}"
        hint = _did_you_mean(name, parameters, f"--{key}.init_args.")
        return f"--{key}.init_args.{name}: {owner} has no argument {name!r}{hint}{listing}"
    if restriction := _RESTRICTION.search(message):
        value, rule = restriction.groups()
        bounds = re.sub(r"v([<>=!]+)", r"\1 ", rule)  # "v>=0 and v<1" -> ">= 0 and < 1"
        return f"{option}={value} is out of range: it must be {bounds}"
    if no_class := _NO_CLASS.search(message):
        name = no_class.group(1) or f"{no_class.group(2)}.{no_class.group(3)}"
        known = classes.get(key, [])
        short = {path.rpartition(".")[2].lower(): path for path in known}  # AdamW for adamw, too
        close = difflib.get_close_matches(name.rpartition(".")[2].lower(), list(short), n=1, cutoff=0.6)
        hint = f"; did you mean {short[close[0]]}?" if close else ""
        listing = _for_example(known) if not close else ""
        return f"{option}: no class {name!r} can be imported{hint}{listing}"
    if not_subclass := _NOT_SUBCLASS.search(message):
        name, base = not_subclass.groups()
        return f"{option}: {name} is not a subclass of {base}{_for_example(classes.get(key, []))}"
    choices = [choice.strip(" '") for literal in _LITERAL.findall(message) for choice in literal.split(",")]
    choices = list(dict.fromkeys(choices))  # a Union lists some choices twice
    value = _GOT_VALUE.search(message)
    if choices and value:
        given = value.group(1).strip()
        return f"{option}: {given!r} is not one of {', '.join(choices)}{_did_you_mean(given, choices)}"
    if wrong_type := _NOT_A_NUMBER.search(message) or _EXPECTED_TYPE.search(message):
        kind, given = wrong_type.groups()
        return f"{option}: expected {_a(kind)}, got {given!r}{_list_hint(key, given)}"
    if _NO_UNION_TYPE in message and (union := _union_mismatch(message)):
        expected, given, given_type, list_like = union
        hint = "" if list_like else _list_hint(key, given, given_list=given_type == "list")
        return f"{option}: expected {expected}, got {given!r}{hint}"
    return f"{option}: " + _joined(message.split(":", 1)[1])


def explain_parse_error(error: ArgumentError, parser: ArgumentParser) -> str:
    """The one-line message for a parse ``error`` of ``parser`` (lc_lightning.argument_errors.explain),
    with every option of its subcommands and of the networks and DataModules of lc-lightning as
    the candidates of "did you mean"."""
    options = accepted_options(parser)
    for key, class_paths in KNOWN_CLASSES.items():
        options += [f"{key}.init_args.{name}" for path in class_paths for name in class_parameters(path)]
    return explain(str(error), options, KNOWN_CLASSES)


def accepted_options(parser: ArgumentParser) -> list[str]:
    """The dotted keys of every ``--option`` of ``parser`` and of its subcommands' parsers."""
    keys = []
    for action in parser._actions:
        if isinstance(action, _SubParsersAction):
            keys += [key for subparser in action.choices.values() for key in accepted_options(subparser)]
        keys += [option[2:] for option in action.option_strings if option.startswith("--")]
    return keys


def _union_mismatch(message: str) -> tuple[str, str, str, bool] | None:
    """From jsonargparse's "Does not validate against any of the Union subtypes" dump, the innermost
    one's (the types it accepts in words, the value given, the value's type, whether a list is among
    the types); None where the dump lacks them."""
    subtypes = list(_SUBTYPES.finditer(message))
    if not subtypes:
        return None
    rest = message[subtypes[-1].end() :]
    given, given_type = _GIVEN_VALUE.search(rest), _GIVEN_TYPE.search(rest)
    if given is None or given_type is None or given_type.group(1).endswith("NestedArg"):
        return None
    names = [_type_in_words(text) for text in _split_types(subtypes[-1].group(1))]
    names = list(dict.fromkeys(names))
    expected = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    return expected, given.group(1).strip(), given_type.group(1), "a list" in names


def _split_types(text: str) -> list[str]:
    """The items of a ``Subtypes: [...]`` list, split at the commas outside brackets."""
    items, depth, start = [], 0, 0
    for index, char in enumerate(text):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            items.append(text[start:index])
            start = index + 1
    return [item.strip() for item in [*items, text[start:]] if item.strip()]


def _type_in_words(text: str) -> str:
    """``<class 'int'>`` -> "an int", ``<class 'NoneType'>`` -> "null", ``typing.List[int]`` -> "a list"."""
    if named := _CLASS.fullmatch(text):
        name = named.group(1).rpartition(".")[2]
        return "null" if name == "NoneType" else _a(name)
    origin = text.partition("[")[0].rpartition(".")[2]
    return "a list" if origin in _LIST_TYPES else _a(origin or text)


def _a(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def _list_hint(key: str, given: str, given_list: bool = False) -> str:
    """For a value of one option that looks like several (``2, 4``, ``[2, 4]``): how lc-sweep takes a
    list of values, one per run; "" for other values."""
    if not (given_list or "," in given):
        return ""
    values = [value.strip() for value in given.strip().strip("[]").split(",") if value.strip()]
    if len(values) < 2:
        return ""
    return (
        f" (it takes one value; to train one run per value, give lc-sweep the list [{', '.join(values)}] in a "
        f"grid file or --axis {key}={','.join(values)})"
    )


def check_config_files(args: Sequence[str]) -> None:
    """Raise InvalidArgumentError naming the file, line and column where a ``--config`` file of
    ``args``, or a config file one of them names as a value, is not valid YAML, and naming a
    ``--config`` file that is empty, no mapping of options, or an lc-sweep grid file. Missing files
    are left to the parser."""
    for path in _config_paths(args):
        document = _check_yaml(path, set())
        if path.is_file():
            _check_config_mapping(path, document)


def option_value(args: Sequence[str], option: str) -> str | None:
    """The value the last ``option VALUE`` or ``option=VALUE`` of ``args`` gives, None without one."""
    value = None
    for index, arg in enumerate(args):
        if arg.startswith(f"{option}="):
            value = arg.partition("=")[2]
        elif arg == option and index + 1 < len(args):
            value = args[index + 1]
    return value


def concerns_the_user_s_input(message: str, args: Sequence[str]) -> bool:
    """Whether the one-line parse error ``message`` may be about what ``args`` set: they hold a
    ``--config``, or an option that is, contains or lies within one the message names (every key of
    a "required" message). False means the value came from a config lc-train put in front of them."""
    if _config_paths(args):
        return True
    given = [_plain_key(arg.partition("=")[0][2:]) for arg in args if arg.startswith("--")]
    named = [_plain_key(key) for key in re.findall(r"--([\w.]+)", message)]
    if message.startswith("the following arguments are required:"):
        named = [_plain_key(key.strip().partition(".")[2]) for key in message.split(":", 1)[1].split(",")]
    return any(
        mine == key or mine.startswith(f"{key}.") or key.startswith(f"{mine}.") for mine in given for key in named
    )


def _plain_key(key: str) -> str:
    return key.replace(".init_args.", ".")


def checkpoint_directory_advice(path: Path) -> str:
    """What to give ``--ckpt_path`` instead of the directory ``path``: the run's checkpoints/last.ckpt
    where it has one, else the checkpoints it holds, else that it holds none."""
    run = (path / CONFIG_FILE).is_file()
    what = "a run directory" if run else "a directory"
    for last in (path / CHECKPOINT_DIR / LAST_CHECKPOINT, path / LAST_CHECKPOINT):
        if last.is_file():
            return f"--ckpt_path {path} is {what}, not a checkpoint file: give {last}"
    held = sorted(path.glob("*.ckpt")) + sorted(path.glob(f"{CHECKPOINT_DIR}/*.ckpt"))
    if held:
        more = f" ({len(held) - 3} more)" if len(held) > 3 else ""
        listing = ", ".join(str(checkpoint) for checkpoint in held[:3])
        return f"--ckpt_path {path} is {what}, not a checkpoint file: give one of its checkpoints, {listing}{more}"
    runs = sorted(last.parent.parent for last in path.glob(f"*/{CHECKPOINT_DIR}/{LAST_CHECKPOINT}"))
    if runs:
        example = runs[-1] / CHECKPOINT_DIR / LAST_CHECKPOINT
        return (
            f"--ckpt_path {path} is a folder of {len(runs)} run(s), not a checkpoint file: give one run's "
            f"checkpoints/last.ckpt, e.g. {example}"
        )
    if run:
        return f"--ckpt_path {path} is a run directory that holds no checkpoint (*.ckpt): the run saved none"
    return f"--ckpt_path {path} is a directory that holds no checkpoint (*.ckpt): give a checkpoint file"


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
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise InvalidArgumentError(f"{where}: invalid YAML: {error.problem or error.context}") from None
    except yaml.YAMLError as error:
        raise InvalidArgumentError(f"{path}: invalid YAML: {_joined(str(error))}") from None
    for value in _strings(document):
        if value.endswith((".yaml", ".yml")):
            _check_yaml(path.parent / value, seen)
    return document


def _config_paths(args: Sequence[str]) -> list[Path]:
    paths = []
    for index, arg in enumerate(args):
        if arg in ("--config", "-c") and index + 1 < len(args):
            paths.append(Path(args[index + 1]))
        elif arg.startswith("--config="):
            paths.append(Path(arg.partition("=")[2]))
    return paths


def _strings(document) -> list[str]:
    if isinstance(document, str):
        return [document]
    if isinstance(document, dict):
        return [text for value in document.values() for text in _strings(value)]
    if isinstance(document, list):
        return [text for value in document for text in _strings(value)]
    return []


def _unknown_option(key: str, options: Sequence[str]) -> str:
    """'unknown option --key' with the accepted options closest to it, by whole key or by last part."""
    close = difflib.get_close_matches(key, options, n=1, cutoff=0.8)
    if not close:
        leaf = key.rpartition(".")[2]
        by_leaf = {}
        for option in options:
            by_leaf.setdefault(option.rpartition(".")[2], option)
        close = [by_leaf[name] for name in difflib.get_close_matches(leaf, list(by_leaf), n=1, cutoff=0.75)]
    hint = f"; did you mean --{close[0]}?" if close else ""
    return f"unknown option --{key}{hint} (lc-train fit --help lists the options)"


def _for_example(class_paths: Sequence[str]) -> str:
    """' (for example A, B...)' with the first five of ``class_paths`` (the usual ones come first); '' for none."""
    return f" (for example {', '.join(class_paths[:5])})" if class_paths else ""


def _did_you_mean(given: str, valid: Sequence[str], prefix: str = "") -> str:
    close = difflib.get_close_matches(given, list(valid), n=1, cutoff=0.6)
    return f"; did you mean {prefix}{close[0]}?" if close else ""


def class_parameters(class_path: str) -> list[str]:
    """The names of the arguments that the ``__init__`` of the class at ``class_path`` takes by
    name, less those ImageClassifier passes itself (a network's ``num_classes`` and
    ``in_channels``, an optimizer's parameters, a schedule's optimizer and run length); [] where
    it cannot be imported."""
    return _parameters(class_path)[1]


def _parameters(class_path: str) -> tuple[list[str], list[str], str]:
    """The arguments of the class at ``class_path`` as (those ImageClassifier passes, the others,
    what the passed ones are); ([], [], "") where it cannot be imported."""
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return [], [], ""
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    names = [p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if issubclass(cls, torch.optim.lr_scheduler.LRScheduler):
        return names[:2], names[2:], "the optimizer and the run's length in optimizer steps"
    if issubclass(cls, torch.optim.Optimizer):
        return names[:1], names[1:], "the parameters to optimize"
    if issubclass(cls, nn.Module) and names[:2] == ["num_classes", "in_channels"]:
        return names[:2], names[2:], "the data's number of classes and of channels"
    return [], names, ""


def _joined(text: str) -> str:
    return " ".join(text.split())
