"""Errors caused by the user's input; ``lc-train`` prints them without a traceback."""


class UserInputError(Exception):
    """Input the user can fix: the message says what is wrong and what to do."""


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
