"""The final value of each scalar a run logged to TensorBoard."""

from collections.abc import Iterable
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

EVENT_FILES = "events.out.tfevents.*"


def final_scalars(run_dir: Path, tags: Iterable[str]) -> dict[str, float]:
    """The final value of each of ``tags`` logged in the event files of ``run_dir`` (a resumed run
    has several): the value at the largest step, ties broken by the latest wall time, over all the
    files. Tags no file holds are left out; an unreadable or truncated file counts for what it holds."""
    wanted = set(tags)
    latest: dict[str, tuple[int, float, float]] = {}  # tag -> (step, wall time, value)
    for path in sorted(Path(run_dir).glob(EVENT_FILES)):
        # Nothing purged: TensorBoard's purge drops the events past the step where it detects a
        # restart, and the rule above needs every event of every file.
        accumulator = EventAccumulator(str(path), size_guidance={SCALARS: 0}, purge_orphaned_data=False)
        accumulator.Reload()
        for tag in wanted.intersection(accumulator.Tags()[SCALARS]):
            for event in accumulator.Scalars(tag):
                candidate = (event.step, event.wall_time, event.value)
                if tag not in latest or candidate[:2] > latest[tag][:2]:
                    latest[tag] = candidate
    return {tag: value for tag, (_, _, value) in latest.items()}
