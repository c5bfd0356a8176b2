"""One live process per run directory: an advisory lock, ``<dir>/run.lock``, that names its holder.

The lock is ``flock`` on the file: the kernel releases it when its holder exits in any way (SIGKILL and
native crashes included), and on filesystems that support it across hosts (NFSv4, Lustre mounted with
``-o flock``) it holds across the nodes of a cluster. The file holds the holder's host, pid, command and
start time while it is held and is emptied when the holder lets go, so a lock found free with a holder
still written in it was held by a process that died.

A process hands a lock it holds to a child by passing the file descriptor (``inheritable_environment``):
the child then holds it too (the flock belongs to the open file, which both share) and names itself as
the holder. lc-sweep holds each run while its lc-train child trains it, so a lc-sweep killed outright
leaves the run held by the child until it ends.
"""

import errno
import fcntl
import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from lc_lightning.errors import RunHeldError

LOCK_FILE = "run.lock"
INHERITED_LOCK = "LC_LIGHTNING_RUN_LOCK_FD"
"""Environment variable: the file descriptor of a run's lock that the parent process holds for this one."""
ACQUIRE_PATIENCE_S = 2.0
"""How long ``acquire`` retries a lock that is taken: a process that only looks at a lock (``holder``) takes
it shared for an instant."""
ORPHANS_PATIENCE_S = 30.0
"""How much longer it waits where the holder written in it is a process of this host that is gone: the
processes it forked (DataLoader workers) hold the lock until they notice and exit."""


@dataclass(frozen=True)
class Holder:
    """The process holding a run: ``host``, ``pid``, ``command`` (e.g. "lc-train fit") and ``since`` (UTC)."""

    host: str
    pid: int
    command: str
    since: str

    def __str__(self) -> str:
        if self == STARTING:
            return "a process that is starting"
        return f"process {self.pid} on {self.host} ({self.command}, since {self.since})"


STARTING = Holder("", 0, "", "")
"""The holder of a lock taken an instant ago, before it wrote itself in."""


_held: dict[Path, "RunLock"] = {}  # the locks this process holds, by lock file


class RunLock:
    """The lock file ``path`` of a directory, held by this process through ``descriptor`` (``acquire``):
    taken by it (``owner``) or handed down by its parent process."""

    def __init__(self, path: Path, descriptor: int, owner: bool, previous: Holder | None) -> None:
        self.path = path
        self.descriptor = descriptor
        self.owner = owner
        self.previous = previous
        """The holder written in the lock when this process took it: a process that died holding it."""

    @classmethod
    def acquire(cls, directory: Path, command: str) -> "RunLock":
        """Take the lock of ``directory`` for this process, writing this process as its holder.

        A lock this process's parent passed down (``INHERITED_LOCK``) for this directory is taken over
        as it is. RunHeldError where a live process (this one included) holds it; OSError where the
        lock file cannot be written (a read-only directory, a full disk) or locked (a filesystem
        without file locks)."""
        path = Path(directory).resolve() / LOCK_FILE
        if path in _held:
            raise RunHeldError(directory, holder(directory))
        lock = _inherited(path) or cls(path, _locked(path), owner=True, previous=None)
        if lock.owner:
            lock.previous = _read_holder(lock.descriptor)
        since = datetime.now(timezone.utc).isoformat(timespec="seconds")
        try:
            lock._write(Holder(socket.gethostname(), os.getpid(), command, since))
        except BaseException:
            lock.release()
            raise
        _held[path] = lock
        return lock

    def inheritable_environment(self) -> dict[str, str]:
        """The environment variable that hands this lock to a child process started with
        ``pass_fds=(lock.descriptor,)``."""
        return {INHERITED_LOCK: str(self.descriptor)}

    def release(self) -> None:
        """Let go of the lock: its holder is emptied, and unless a parent process holds it too
        (an inherited lock), it is free."""
        if self.descriptor < 0:
            return
        _held.pop(self.path, None)
        try:
            os.ftruncate(self.descriptor, 0)
        except OSError:
            pass  # a read-only or full filesystem: the lock is released all the same
        if self.owner:
            fcntl.flock(self.descriptor, fcntl.LOCK_UN)
        os.close(self.descriptor)
        self.descriptor = -1

    def _write(self, holder: Holder) -> None:
        data = json.dumps(asdict(holder)).encode()
        try:
            os.ftruncate(self.descriptor, 0)
            os.pwrite(self.descriptor, data, 0)
            os.fsync(self.descriptor)
        except OSError as error:  # a full disk: named
            raise OSError(error.errno, error.strerror, str(self.path)) from None


def holder(directory: Path) -> Holder | None:
    """The live process holding ``directory``'s lock (this one included), or None where it is free."""
    path = Path(directory).resolve() / LOCK_FILE
    if path in _held:
        return _read_holder(_held[path].descriptor) or STARTING
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_holder(descriptor) or STARTING
    except OSError:
        return None  # a filesystem without file locks: nothing can hold it
    else:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        return None
    finally:
        os.close(descriptor)


def last_holder(directory: Path) -> Holder | None:
    """The holder written in ``directory``'s lock, live or not (None where it is empty)."""
    try:
        descriptor = os.open(Path(directory) / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        return _read_holder(descriptor)
    finally:
        os.close(descriptor)


def _inherited(path: Path) -> RunLock | None:
    """The lock of ``path`` that the parent process passed down, if it did."""
    value = os.environ.get(INHERITED_LOCK, "")
    if not value.isdigit():
        return None
    descriptor = int(value)
    try:
        handed, wanted = os.fstat(descriptor), os.stat(path)
    except OSError:
        return None
    if (handed.st_dev, handed.st_ino) != (wanted.st_dev, wanted.st_ino):
        return None
    del os.environ[INHERITED_LOCK]  # this process's own children hold nothing
    os.set_inheritable(descriptor, False)
    return RunLock(path, descriptor, owner=False, previous=None)


def _locked(path: Path) -> int:
    """A descriptor of the lock file ``path`` (made where missing) that holds its exclusive flock.
    RunHeldError naming the holder where another process holds it for longer than ACQUIRE_PATIENCE_S."""
    while True:
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except FileNotFoundError:  # its run was removed meanwhile (a start that failed): made again
            path.parent.mkdir(parents=True, exist_ok=True)
            continue
        try:
            _flock_within(descriptor, ACQUIRE_PATIENCE_S)
        except BlockingIOError:
            held_by = _read_holder(descriptor) or STARTING
            try:
                if held_by.host != socket.gethostname() or process_alive(held_by.pid):
                    raise
                _flock_within(descriptor, ORPHANS_PATIENCE_S)  # its DataLoader workers still share the lock
            except BlockingIOError:
                os.close(descriptor)
                raise RunHeldError(path.parent, held_by) from None
        except OSError as error:
            os.close(descriptor)
            if error.errno in (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP):
                raise OSError(error.errno, error.strerror, str(path)) from None  # lc_lightning.faults names it
            raise
        except BaseException:
            os.close(descriptor)
            raise
        try:
            if os.path.samestat(os.fstat(descriptor), os.stat(path)):
                return descriptor
        except FileNotFoundError:
            pass
        os.close(descriptor)  # its run was removed meanwhile (a start that failed): lock the file there now


def _flock_within(descriptor: int, seconds: float) -> None:
    """Take an exclusive flock on ``descriptor``, retrying for up to ``seconds``; BlockingIOError if it stays taken."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host lives (one of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _read_holder(descriptor: int) -> Holder | None:
    try:
        data = os.pread(descriptor, 4096, 0)
        return Holder(**json.loads(data)) if data else None
    except (OSError, ValueError, TypeError):
        return None
