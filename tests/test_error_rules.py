"""Every rule of lc-train's one-line parse errors (argument_errors.RULES) against the message that
jsonargparse really gives for a command line: the line the user reads, and that this rule, not another
one or the fallback, made it. A jsonargparse that rewords one of its messages fails here."""

from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import pytest

from lc_lightning import argument_errors
from lc_lightning.argument_errors import RULES, explain, rule_for
from lc_lightning.cli import main

FIT = ["fit", "--config", str(Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml")]
HELP = "(lc-train fit --help lists the options)"


class Case(NamedTuple):
    """A command line, the line lc-train answers it with (``{cwd}``: the working directory), and the
    files it needs there (name -> text)."""

    args: list[str]
    line: str
    files: Mapping[str, str] = {}


def fit(option: str) -> list[str]:
    return [*FIT, option, "--print_config"]


CASES = {
    "unrecognized_option": Case(
        fit("--trainer.maxepochs=3"), f"unknown option --trainer.maxepochs; did you mean --trainer.max_epochs? {HELP}"
    ),
    "ambiguous_option": Case(
        fit("--model.lr=0.1"), f"unknown option --model.lr; did you mean --model.optimizer.init_args.lr? {HELP}"
    ),
    "invalid_choice": Case(
        ["tset", *FIT[1:]], "unknown subcommand 'tset'; did you mean test? (choose from fit, validate, test)"
    ),
    "required_arguments": Case(
        ["validate", "--trainer.accelerator=cpu"],
        "the following arguments are required: validate.model.network, validate.data",
    ),
    "unknown_group_option": Case(
        [*FIT, "--config", "epochs.yaml", "--print_config"],
        f"unknown option --trainer.max_epohcs; did you mean --trainer.max_epochs? {HELP}",
        {"epochs.yaml": "trainer:\n  max_epohcs: 3\n"},
    ),
    "unknown_config_key": Case(
        [*FIT, "--config", "epochs.yaml", "--print_config"],
        f"unknown option --traner.max_epochs; did you mean --trainer.max_epochs? {HELP}",
        {"epochs.yaml": "traner:\n  max_epochs: 3\n"},
    ),
    "missing_file": Case(
        [*FIT, "--config", "recipe.yaml", "--print_config"], "--config: no such file {cwd}/recipe.yaml"
    ),
    "set_by_lc_train": Case(
        fit("--model.network.init_args.num_classes=3"),
        "--model.network.init_args.num_classes: set by lc-train, which gives CifarResNet the data's number of classes "
        "and of channels (its arguments: depth, width, kernel_size, expansion, init, lc_form, normalized_lc_step)",
    ),
    "no_such_argument": Case(
        fit("--model.optimizer.init_args.nesterof=true"),
        "--model.optimizer.init_args.nesterof: PaperSGD has no argument 'nesterof'; did you mean "
        "--model.optimizer.init_args.nesterov? (its arguments: lr, momentum, nesterov, weight_decay)",
    ),
    "out_of_range": Case(
        fit("--model.optimizer.weight_decay=-0.5"),
        "--model.optimizer.init_args.weight_decay=-0.5 is out of range: it must be >= 0",
    ),
    "no_such_class": Case(
        fit("--data=SVHNDatamodule"),
        "--data: no class 'SVHNDatamodule' can be imported; did you mean lc_lightning.data.SVHNDataModule?",
    ),
    "not_a_subclass": Case(
        fit("--model.network=lc_lightning.data.SVHNDataModule"),
        "--model.network: lc_lightning.data.SVHNDataModule is not a subclass of Module (for example "
        "lc_lightning.models.CifarResNet, lc_lightning.models.TimmNet)",
    ),
    "not_a_choice": Case(
        fit("--model.network.init_args.lc_form=fold"),
        "--model.network.init_args.lc_form: 'fold' is not one of folded, explicit, preconditioned, gram; "
        "did you mean folded?",
    ),
    "not_a_number": Case(
        fit("--model.optimizer.momentum=high"), "--model.optimizer.init_args.momentum: expected a float, got 'high'"
    ),
    "not_of_the_type": Case(
        fit("--model.freeze_spatial=maybe"), "--model.freeze_spatial: expected a bool, got 'maybe'"
    ),
    "no_union_type": Case(fit("--trainer.max_epochs=1.5"), "--trainer.max_epochs: expected an int or null, got '1.5'"),
}


def test_every_rule_has_a_command_line_here():
    assert list(CASES) == [rule.name for rule in RULES]


@pytest.fixture
def parser_messages(monkeypatch) -> list[str]:
    """The messages of the parser that reach ``argument_errors.explain``, in order."""
    messages = []

    def recording(message, options, classes):
        messages.append(message)
        return explain(message, options, classes)

    monkeypatch.setattr(argument_errors, "explain", recording)
    return messages


@pytest.mark.parametrize("name", list(CASES))
def test_each_rule_makes_the_line_of_its_real_parser_message(capsys, tmp_path, monkeypatch, parser_messages, name):
    case = CASES[name]
    monkeypatch.chdir(tmp_path)
    for file, text in case.files.items():
        (tmp_path / file).write_text(text)
    with pytest.raises(SystemExit) as exit_info:
        main(case.args)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"lc-train: error: {case.line.format(cwd=tmp_path)}\n"
    (message,) = parser_messages
    recognised = rule_for(message)
    assert recognised is not None and recognised.name == name, message


@pytest.mark.parametrize(
    "message, line",
    [
        ("Unexpected config:\n  [1, 2]", "Unexpected config: [1, 2]"),
        ('Parser key "model.network":\n\n  - Unexpected import path format: net.yaml',
         "--model.network: - Unexpected import path format: net.yaml"),
    ],
    ids=["naming-no-option", "naming-an-option"],
)  # fmt: skip
def test_a_message_no_rule_recognises_comes_back_in_one_line_after_the_option_it_names(message, line):
    assert rule_for(message) is None
    assert explain(message, ["model.network"], {}) == line
