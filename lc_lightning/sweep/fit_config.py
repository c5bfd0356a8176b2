"""The configs lc-sweep gives its runs, built by lc-train's own parser without running anything."""

import warnings
from argparse import ArgumentError

from jsonargparse import Namespace
from lightning.pytorch.cli import LightningArgumentParser

from lc_lightning.argument_errors import explain_parse_error
from lc_lightning.cli import CLI_ARGUMENTS, LCTrainCLI
from lc_lightning.command_line import check_config_files
from lc_lightning.errors import InvalidArgumentError


class FitConfigParser(LCTrainCLI):
    """The parser of ``lc-train fit``, built once, for checking many runs' configs quickly."""

    def __init__(self) -> None:
        super().__init__(**CLI_ARGUMENTS, args=[], run=False, parser_kwargs={"exit_on_error": False})

    def fit_config(self, args: list[str]) -> str:
        """The complete config that ``lc-train fit <args>`` would run with and save as the run's
        ``config.yaml`` (YAML, defaults filled in, nested config files inlined), built without
        instantiating anything. A config ``lc-train`` would reject raises InvalidArgumentError with the
        parser's message in one line."""
        check_config_files(args)
        try:
            config = self.parser.parse_args(args)
        except ArgumentError as error:
            raise InvalidArgumentError(explain_parse_error(error, self.parser)) from None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # skip_none, as Lightning's SaveConfigCallback
            return self.parser.dump(config, skip_none=False)

    # Of LightningCLI's construction, only the parser is built: no seed is set and nothing is instantiated.
    def parse_arguments(self, parser: LightningArgumentParser, args) -> None:
        self.config = Namespace(seed_everything=False)

    def before_instantiate_classes(self) -> None:
        pass

    def instantiate_classes(self) -> None:
        pass
