"""The optimizer of the paper's recipe and the type of a schedule that needs the run's length.

ImageClassifier takes both as callables (``--model.optimizer``, ``--model.lr_scheduler``), so a
config can name any torch optimizer or scheduler instead, with its own arguments.
"""

from collections.abc import Callable

import torch
from jsonargparse import typing


def _checked_float(restricted: type) -> type:
    """A parameter type that lc-train's parser checks as ``restricted`` (a jsonargparse restricted
    number type) does, but whose parsed values stay plain floats. Values of ``restricted`` itself
    are a float subclass, which neither YAML nor a checkpoint loaded with weights_only=True takes;
    jsonargparse keeps an optimizer's lr and weight_decay when the config names another optimizer
    class, so such a value would reach that optimizer, the run's config and its checkpoints."""
    checked = type(restricted.__name__, (float,), {"__doc__": restricted.__doc__, "__module__": __name__})
    # no value counts as parsed already, so that every one, defaults and carried-over values too, is checked
    typing.register_type(
        checked, serializer=float, deserializer=lambda value: float(restricted(value)), type_check=lambda *_: False
    )
    return checked


# The ranges lc-train checks while it parses: lr > 0, weight decay >= 0, momentum and label smoothing in [0, 1)
PositiveFloat = _checked_float(typing.PositiveFloat)
NonNegativeFloat = _checked_float(typing.NonNegativeFloat)
UnitIntervalFromZero = _checked_float(
    typing.restricted_number_type("UnitIntervalFromZero", float, [(">=", 0), ("<", 1)])
)

RunLengthScheduleCallable = Callable[[torch.optim.Optimizer, int], torch.optim.lr_scheduler.LRScheduler]
"""A learning-rate scheduler class whose first two arguments are the optimizer and the run's length
in optimizer steps, e.g. ``torch.optim.lr_scheduler.CosineAnnealingLR`` (``T_max``) or
``PolynomialLR`` (``total_iters``); in a config, its other arguments go to ``init_args``. It is
stepped every optimizer step."""


class PaperSGD(torch.optim.SGD):
    """SGD with the paper's recipe as its defaults: lr 0.01, Nesterov momentum 0.9, weight decay 0.01.

    The same optimizer as ``torch.optim.SGD`` with these arguments (no dampening); the types of
    the arguments make lc-train refuse a value out of range while it parses. They reach SGD as
    plain floats, so that checkpoints hold no type of the parser.

    Args:
        params: the parameters, or parameter groups, to optimize.
        lr: the learning rate (> 0); the peak of the schedule.
        momentum: the momentum factor, in [0, 1).
        nesterov: use Nesterov momentum.
        weight_decay: the L2 penalty (>= 0), on every parameter given.
    """

    def __init__(
        self,
        params,
        lr: PositiveFloat = 0.01,
        momentum: UnitIntervalFromZero = 0.9,
        nesterov: bool = True,
        weight_decay: NonNegativeFloat = 0.01,
    ) -> None:
        super().__init__(
            params, lr=float(lr), momentum=float(momentum), nesterov=nesterov, weight_decay=float(weight_decay)
        )
