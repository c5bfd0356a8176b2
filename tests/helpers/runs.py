"""What a run left, read for the tests: the hashes of its files, the values it logged, its state compared
bitwise with another run's."""

import hashlib
from collections import defaultdict
from pathlib import Path

import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def file_hashes(folder: Path, leave_out: tuple[str, ...] = ()) -> dict[str, str]:
    """The sha256 of every file under ``folder``, by path relative to it; files under a top-level entry whose
    name starts with one of ``leave_out`` are left out."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not (leave_out and path.relative_to(folder).parts[0].startswith(leave_out))
    }


def step_values(run_dir: Path, tag: str) -> dict[int, list[float]]:
    """Every value of ``tag`` in the run's event files (a resumed run has several), by step."""
    values = defaultdict(list)
    for path in sorted(run_dir.glob("events.out.tfevents.*")):
        events = EventAccumulator(str(path), size_guidance={"scalars": 0}, purge_orphaned_data=False)
        events.Reload()
        for event in events.Scalars(tag):
            values[event.step].append(event.value)
    return dict(values)


def final_value(run_dir: Path, tag: str) -> float:
    """The value of ``tag`` at the run's last logged step, read straight from its event files."""
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return max(events.Scalars(tag), key=lambda event: (event.step, event.wall_time)).value


def assert_same_state(state: dict, expected: dict) -> None:
    """Bitwise the same state dicts, extra states (dicts of tensors and numbers) included."""
    assert state.keys() == expected.keys()
    for name, value in expected.items():
        if isinstance(value, dict):
            assert_same_state(state[name], value)
        elif isinstance(value, torch.Tensor):
            assert torch.equal(state[name], value), name
        else:
            assert state[name] == value, name


def assert_same_training(resumed: Path, uninterrupted: Path, steps: int) -> None:
    """Bitwise the same final weights, global step and per-step training loss."""
    final = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=False)
    expected = torch.load(uninterrupted / "checkpoints" / "last.ckpt", weights_only=False)
    assert final["global_step"] == expected["global_step"] == steps
    assert_same_state(final["state_dict"], expected["state_dict"])
    losses, expected_losses = step_values(resumed, "train/loss_step"), step_values(uninterrupted, "train/loss_step")
    assert sorted(losses) == sorted(expected_losses) == list(range(steps))
    for step, (value,) in expected_losses.items():
        assert set(losses[step]) == {value}, step  # logged again after the resume: the same value
