"""The fast paths of ImageClassifier: channels-last memory format and torch.compile."""

import torch
from helpers.networks import classifier, train_step

from lc_lightning.nn import lc_blocks, lc_weights


def test_channels_last_and_compile_compute_what_the_plain_module_does():
    images, labels = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))
    plain = classifier(channels_last=False)
    plain_logits = train_step(plain, images, labels)
    torch._dynamo.utils.counters.clear()
    for options in ({"channels_last": True}, {"channels_last": False, "compile": True}):
        fast = classifier(**options)
        assert fast.state_dict().keys() == plain.state_dict().keys()  # checkpoints stay interchangeable
        logits = train_step(fast, images, labels)
        graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
        assert graphs > 0 if options.get("compile") else graphs == 0  # compiled exactly when asked
        torch.testing.assert_close(logits, plain_logits, rtol=1e-4, atol=1e-5)
        for name, value in plain.state_dict().items():
            torch.testing.assert_close(fast.state_dict()[name], value, rtol=1e-4, atol=1e-5, msg=name)
    network = classifier(channels_last=True).network
    blocks = [conv for _, conv in lc_blocks(network)]
    plain = [m for m in network.modules() if isinstance(m, torch.nn.Conv2d) and m not in blocks]
    assert blocks and plain  # LC-Blocks and the 1x1 shortcut convolutions
    for block in blocks:  # they feed a matrix product, not a convolution: left as they are
        assert all(weight.is_contiguous() for weight in lc_weights(block))
    for conv in plain:
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)
