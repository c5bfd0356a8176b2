"""Errors caused by the user's input; ``lc-train`` prints them without a traceback."""


class UserInputError(Exception):
    """Input the user can fix: the message says what is wrong and what to do."""


def user_input_cause(error: BaseException | None) -> UserInputError | None:
    """The UserInputError that ``error`` is or was raised from, if any (jsonargparse and DataLoader workers
    wrap the errors they meet)."""
    while error is not None:
        if isinstance(error, UserInputError):
            return error
        error = error.__cause__ or error.__context__
    return None


def one_line(error: UserInputError) -> str:
    """The error's message. An error raised in a DataLoader worker process comes back with the
    worker's traceback in its message; its last line, "<class>: <message>", is what counts."""
    text = str(error)
    if "Original Traceback" in text:
        return text.rstrip().splitlines()[-1].split(": ", 1)[-1]
    return text


class DatasetNotFoundError(UserInputError, FileNotFoundError):
    """A dataset is not where the configuration says; the message names the path and the fix."""


class DownloadError(UserInputError):
    """A dataset could not be downloaded; the message says which files to put where instead."""


class InvalidArgumentError(UserInputError, ValueError):
    """An argument outside its valid range (an expansion of 0, an unknown init name...)."""


class DatasetLayoutError(UserInputError, ValueError):
    """A dataset folder is there but not laid out as expected; the message says how to fix it."""


class CorruptImageError(UserInputError, OSError):
    """An image file cannot be decoded; the message names the file."""


class CheckpointError(UserInputError):
    """A checkpoint file is missing, truncated or corrupt; the message names it."""


class TrainingDivergedError(UserInputError, ArithmeticError):
    """The loss became NaN or infinite (often a learning rate too high); the message names the step."""


class RunHeldError(UserInputError):
    """A run directory is held by another live process (lc_lightning.run_lock); ``holder`` names it."""

    def __init__(self, directory, holder) -> None:
        super().__init__(f"{directory} is in use by {holder}")
        self.holder = holder


class MachineFaultError(Exception):
    """The machine stopped a command: a full disk, a read-only or forbidden directory. The message says
    what happened, where, what was kept and the command to run once it is fixed."""
