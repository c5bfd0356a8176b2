"""FGSM (Goodfellow et al. 2015): the one-step l_inf attack the paper measures robustness with."""

import torch
from torch import nn
from torch.nn import functional as F

from lc_lightning.errors import InvalidArgumentError


def check_epsilon(epsilon: float) -> None:
    """Raise InvalidArgumentError (a ValueError) unless ``epsilon`` is in [0, 1] (pixel space)."""
    if not 0 <= epsilon <= 1:
        raise InvalidArgumentError(f"epsilon must be in [0, 1] (pixel space), got {epsilon}")


def fgsm_images(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Adversarial images ``clamp(images + epsilon * sign(grad_images CE(model(images), targets)), 0, 1)``.

    ``model`` maps images in [0, 1] to logits (normalisation inside, as ImageClassifier does),
    so ``epsilon`` is in pixel space; it is used as it is (call it in eval mode). The loss is
    the plain cross-entropy, without label smoothing. Works inside ``torch.inference_mode``
    (as in Lightning's validation) and under autocast; no parameter gradient is accumulated.
    """
    check_epsilon(epsilon)
    with torch.inference_mode(False), torch.enable_grad():
        # Clones outside inference mode are normal tensors that autograd may save.
        attacked = images.detach().clone().requires_grad_(True)
        loss = F.cross_entropy(model(attacked), targets.clone(), reduction="sum")
        (gradient,) = torch.autograd.grad(loss, attacked)
    return (attacked.detach() + epsilon * gradient.sign()).clamp_(0, 1)


def fgsm_robust(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, epsilon: float) -> torch.Tensor:
    """A bool per image: classified correctly both before and after the FGSM attack of ``epsilon``.

    A clean error is never robust, so the robust accuracy (the mean) never exceeds the clean
    accuracy. Costs two forward passes and one forward-backward pass of the batch.
    """
    with torch.no_grad():
        clean = model(images).argmax(dim=1) == targets
        attacked = model(fgsm_images(model, images, targets, epsilon)).argmax(dim=1) == targets
    return clean & attacked
