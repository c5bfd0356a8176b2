"""Where the ``cuda`` tests run."""

import os

CUDA_TEST_DEVICE = os.environ.get("LC_TEST_DEVICE", "cuda")
"""The device the ``cuda`` tests run on: a CUDA GPU, or with LC_TEST_DEVICE=cpu the CPU (the GPU
acceptance's --dry-run runs them so before any GPU is at hand)."""
