"""What the tests share besides fixtures (those are in tests/conftest.py): plain functions, classes and
constants, one module a concern. tests/ is on sys.path (pyproject.toml's pytest ``pythonpath``), so a test
imports ``from helpers.cli import tiny_cifar_args``; a process a test starts needs ``PYTHONPATH=tests`` to
load a class path such as ``helpers.interruptions.SignalAtStep``."""
