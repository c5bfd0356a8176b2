"""One-line messages for what lc-train's parser rejects: unknown options and class names with
"did you mean", values outside their choices or range or of the wrong type (a list for one value),
missing files. (Malformed config files are caught before the parser reads them: lc_lightning.command_line.)

jsonargparse reports these as multi-line texts (nested "Parser key" blocks, Union alternatives);
``explain`` condenses such a text into the one line that names the option and what to do, by the
first of RULES (a pattern of jsonargparse's or argparse's English and a formatter) that recognises it.
"""

import difflib
import importlib
import inspect
import re
from argparse import ArgumentError, ArgumentParser, _SubParsersAction
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from lc_lightning import data, models
from lc_lightning.command_line import config_paths

_PARSER_KEY = re.compile(r'Parser key "([^"]+)"')
_UNRECOGNIZED = re.compile(r"\Aunrecognized arguments:(?: [^-\s]\S*)* -+([^\s=]+)")  # the first option among them
_AMBIGUOUS = re.compile(r"\Aambiguous option: -+([^\s=]+)")
_INVALID_CHOICE = re.compile(r"argument (\w+): invalid choice: '([^']*)' \(choose from (.*)\)")
_REQUIRED = re.compile(r"\Athe following arguments are required: (.*)")
_GROUP_OPTION = re.compile(r"\AGroup '([\w.]+)' does not accept option '([\w.]+)'\Z")
_CONFIG_KEY = re.compile(r"\AOption '([\w.]+)' is not accepted\Z")
_MISSING_FILE = re.compile(r"File does not exist: '([^']+)'")
_NOT_ACCEPTED = re.compile(r"Option '([^']+)' is not accepted")
_CLASS_PATH = re.compile(r"class_path[=:]? ?'([\w.]+)'")
_RESTRICTION = re.compile(r"Not of type \w+: (\S+) does not conform to restriction (.+?)(?:\. Got value:|$)", re.M)
_NO_CLASS = re.compile(r"Expected a dot import path string: (\S+)|module '([\w.]+)' has no attribute '(\w+)'")
_NOT_SUBCLASS = re.compile(r"Expected '([\w.]+)' to be a subclass of <class '(\w+)'>")
_LITERAL = re.compile(r"Literal\[([^\]]*)\]")
_GOT_VALUE = re.compile(r"(?:Got|Given) value: ([^\n]*?)(?:\. Got value:|$)", re.MULTILINE)
_NOT_A_NUMBER = re.compile(r"could not convert string to (\w+): '([^']*)'")
_EXPECTED_TYPE = re.compile(r"Expected a <class '(\w+)'>\. Got value: (.*?)(?:\. Got value:|$)", re.MULTILINE)
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


class Message(NamedTuple):
    """A parser error message as the rules see it: its ``text``, the dotted ``key`` of the option its
    "Parser key" blocks name ("" where it names none), and the candidates of "did you mean" (see ``explain``)."""

    text: str
    key: str
    options: Sequence[str]
    classes: Mapping[str, Sequence[str]]

    @property
    def option(self) -> str:
        return f"--{self.key}"


class Rule(NamedTuple):
    """One kind of parser message and its one line. ``recognise`` takes a message's text and returns
    something true (a regex match...) for a message of this kind, else None or False; ``format`` makes the
    line from that and the Message. A ``keyed`` rule applies only to a message that names a "Parser key"."""

    name: str
    recognise: Callable[[str], Any]
    format: Callable[[Any, Message], str]
    keyed: bool


def _unknown_key(match: re.Match, message: Message) -> str:
    """The unknown option that ``match``'s groups name, joined with dots (a group and its option)."""
    return _unknown_option(".".join(match.groups()), message.options)


def _invalid_choice(match: re.Match, message: Message) -> str:
    name, value, choices = match.groups()
    valid = [choice.strip(" '") for choice in choices.split(",")]
    return f"unknown {name} {value!r}{_did_you_mean(value, valid)} (choose from {', '.join(valid)})"


def _as_it_is(match: re.Match, message: Message) -> str:
    return _joined(message.text)


def _missing_file(match: re.Match, message: Message) -> str:
    return f"{message.option}: no such file {match.group(1)}"


class _Rejected(NamedTuple):
    """An argument a class does not accept: its name, the class's import path ("" where the message has
    none), and the class's arguments as ``_parameters`` gives them."""

    name: str
    class_path: str
    passed: list[str]
    parameters: list[str]
    what: str


def _rejected_argument(text: str) -> _Rejected | None:
    rejected = _NOT_ACCEPTED.search(text)
    if rejected is None:
        return None
    class_path = _CLASS_PATH.search(text)
    path = class_path.group(1) if class_path else ""
    return _Rejected(rejected.group(1), path, *_parameters(path))


def _passed_by_lc_train(text: str) -> _Rejected | None:
    rejected = _rejected_argument(text)
    return rejected if rejected is not None and rejected.name in rejected.passed else None


def _set_by_lc_train(rejected: _Rejected, message: Message) -> str:
    owner = rejected.class_path.rpartition(".")[2]
    return (
        f"{message.option}.init_args.{rejected.name}: set by lc-train, which gives {owner} {rejected.what}"
        f"{_arguments(rejected.parameters)}"
    )


def _no_such_argument(rejected: _Rejected, message: Message) -> str:
    owner = rejected.class_path.rpartition(".")[2] or message.key
    hint = _did_you_mean(rejected.name, rejected.parameters, f"{message.option}.init_args.")
    return (
        f"{message.option}.init_args.{rejected.name}: {owner} has no argument {rejected.name!r}{hint}"
        f"{_arguments(rejected.parameters)}"
    )


def _arguments(parameters: Sequence[str]) -> str:
    return f" (its arguments: {', '.join(parameters)})" if parameters else ""


def _out_of_range(match: re.Match, message: Message) -> str:
    value, restriction = match.groups()
    bounds = re.sub(r"v([<>=!]+)", r"\1 ", restriction)  # "v>=0 and v<1" -> ">= 0 and < 1"
    return f"{message.option}={value} is out of range: it must be {bounds}"


def _no_such_class(match: re.Match, message: Message) -> str:
    name = match.group(1) or f"{match.group(2)}.{match.group(3)}"
    known = message.classes.get(message.key, [])
    short = {path.rpartition(".")[2].lower(): path for path in known}  # AdamW for adamw, too
    close = difflib.get_close_matches(name.rpartition(".")[2].lower(), list(short), n=1, cutoff=0.6)
    hint = f"; did you mean {short[close[0]]}?" if close else ""
    listing = _for_example(known) if not close else ""
    return f"{message.option}: no class {name!r} can be imported{hint}{listing}"


def _not_a_subclass(match: re.Match, message: Message) -> str:
    name, base = match.groups()
    return f"{message.option}: {name} is not a subclass of {base}{_for_example(message.classes.get(message.key, []))}"


def _literal_choice(text: str) -> tuple[str, list[str]] | None:
    """The value given and the choices of the Literal types a message names; None where it names neither."""
    choices = [choice.strip(" '") for literal in _LITERAL.findall(text) for choice in literal.split(",")]
    choices = list(dict.fromkeys(choices))  # a Union lists some choices twice
    given = _GOT_VALUE.search(text)
    return (given.group(1).strip(), choices) if choices and given else None


def _not_a_choice(choice: tuple[str, list[str]], message: Message) -> str:
    given, choices = choice
    return f"{message.option}: {given!r} is not one of {', '.join(choices)}{_did_you_mean(given, choices)}"


def _wrong_type(match: re.Match, message: Message) -> str:
    kind, given = match.groups()
    return f"{message.option}: expected {_a(kind)}, got {given!r}{_list_hint(message.key, given)}"


def _union_mismatch(message: str) -> tuple[str, str, str, bool] | None:
    """From jsonargparse's "Does not validate against any of the Union subtypes" dump, the innermost
    one's (the types it accepts in words, the value given, the value's type, whether a list is among
    the types); None for another message or where the dump lacks them."""
    subtypes = list(_SUBTYPES.finditer(message)) if _NO_UNION_TYPE in message else []
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


def _no_union_type(union: tuple[str, str, str, bool], message: Message) -> str:
    expected, given, given_type, list_like = union
    hint = "" if list_like else _list_hint(message.key, given, given_list=given_type == "list")
    return f"{message.option}: expected {expected}, got {given!r}{hint}"


RULES = (
    # argparse's and jsonargparse's messages about the command line as a whole, and about config keys
    Rule("unrecognized_option", _UNRECOGNIZED.search, _unknown_key, keyed=False),
    # argparse takes a prefix of one option for it, not of several: an unknown option like any other
    Rule("ambiguous_option", _AMBIGUOUS.search, _unknown_key, keyed=False),
    Rule("invalid_choice", _INVALID_CHOICE.search, _invalid_choice, keyed=False),
    Rule("required_arguments", _REQUIRED.search, _as_it_is, keyed=False),  # concerns_the_user_s_input reads it
    Rule("unknown_group_option", _GROUP_OPTION.search, _unknown_key, keyed=False),
    Rule("unknown_config_key", _CONFIG_KEY.search, _unknown_key, keyed=False),
    # the value of the option that the "Parser key" blocks name
    Rule("missing_file", _MISSING_FILE.search, _missing_file, keyed=True),
    Rule("set_by_lc_train", _passed_by_lc_train, _set_by_lc_train, keyed=True),
    Rule("no_such_argument", _rejected_argument, _no_such_argument, keyed=True),
    Rule("out_of_range", _RESTRICTION.search, _out_of_range, keyed=True),
    Rule("no_such_class", _NO_CLASS.search, _no_such_class, keyed=True),
    Rule("not_a_subclass", _NOT_SUBCLASS.search, _not_a_subclass, keyed=True),
    Rule("not_a_choice", _literal_choice, _not_a_choice, keyed=True),
    Rule("not_a_number", _NOT_A_NUMBER.search, _wrong_type, keyed=True),
    Rule("not_of_the_type", _EXPECTED_TYPE.search, _wrong_type, keyed=True),
    Rule("no_union_type", _union_mismatch, _no_union_type, keyed=True),
)
"""The kinds of parser messages ``explain`` knows, in the order it tries them."""


def explain(message: str, options: Iterable[str], classes: Mapping[str, Sequence[str]]) -> str:
    """The one-line form of a parser error ``message``: the line of the first rule of RULES that
    recognises it.

    ``options`` are the dotted keys the command accepts (``trainer.max_epochs``,
    ``model.network.init_args.expansion``, ``model.optimizer.init_args.lr``...), for "did you
    mean" on unknown options and on ambiguous abbreviations of options;
    ``classes`` maps a key to the import paths of the classes it usually takes
    (``model.network`` -> ``lc_lightning.models.CifarResNet``...), for unknown class names.
    A message no rule recognises comes back with its lines joined, after the option it names if any.
    """
    key = ".init_args.".join(_PARSER_KEY.findall(message))
    found = _recognised(message)
    if found is None:
        return f"--{key}: {_joined(message.split(':', 1)[1])}" if key else _joined(message)
    rule, match = found
    return rule.format(match, Message(message, key, list(options), classes))


def rule_for(message: str) -> Rule | None:
    """The rule of RULES whose line ``explain`` gives for the parser error ``message``; None where
    ``explain`` falls back to the message's own lines."""
    found = _recognised(message)
    return found[0] if found else None


def _recognised(message: str) -> tuple[Rule, Any] | None:
    keyed = _PARSER_KEY.search(message) is not None
    for rule in RULES:
        if keyed or not rule.keyed:
            match = rule.recognise(message)
            if match:
                return rule, match
    return None


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


def _did_you_mean(given: str, valid: Sequence[str], prefix: str = "") -> str:
    close = difflib.get_close_matches(given, list(valid), n=1, cutoff=0.6)
    return f"; did you mean {prefix}{close[0]}?" if close else ""


def _for_example(class_paths: Sequence[str]) -> str:
    """' (for example A, B...)' with the first five of ``class_paths`` (the usual ones come first); '' for none."""
    return f" (for example {', '.join(class_paths[:5])})" if class_paths else ""


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


def _joined(text: str) -> str:
    return " ".join(text.split())


def concerns_the_user_s_input(message: str, args: Sequence[str]) -> bool:
    """Whether the one-line parse error ``message`` may be about what ``args`` set: they hold a
    ``--config``, or an option that is, contains or lies within one the message names (every key of
    a "required" message). False means the value came from a config lc-train put in front of them."""
    if config_paths(args):
        return True
    given = [_plain_key(arg.partition("=")[0][2:]) for arg in args if arg.startswith("--")]
    named = [_plain_key(key) for key in re.findall(r"--([\w.]+)", message)]
    if required := _REQUIRED.match(message):
        named = [_plain_key(key.strip().partition(".")[2]) for key in required.group(1).split(",")]
    return any(
        mine == key or mine.startswith(f"{key}.") or key.startswith(f"{mine}.") for mine in given for key in named
    )


def _plain_key(key: str) -> str:
    return key.replace(".init_args.", ".")
