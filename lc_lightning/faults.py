"""Faults of the machine a run meets: a full disk, a read-only or forbidden directory (in words), a crash."""

import contextlib
import errno
import faulthandler
import sys
from pathlib import Path

from lc_lightning.errors import UserInputError

DISK_FULL = {errno.ENOSPC: "disk full (no space left on device)", errno.EDQUOT: "disk quota exceeded"}
NOT_WRITABLE = {errno.EROFS: "read-only file system", errno.EACCES: "permission denied", errno.EPERM: "not permitted"}
NO_LOCKS = (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP)  # flock on a filesystem that has none


def machine_fault(error: BaseException | None) -> OSError | None:
    """The OSError of a full disk, an unwritable directory or a filesystem without file locks that
    ``error`` is or was raised from (directly or while it was being handled), or None; None too where a
    UserInputError comes first in that chain (a failed download into a read-only folder says it best)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, UserInputError):
            return None  # its own message says what to do
        if isinstance(error, OSError) and error.errno in {*DISK_FULL, *NOT_WRITABLE, *NO_LOCKS}:
            return error
        error = error.__cause__ or error.__context__
    return None


def describe_fault(fault: OSError, name: str | None = None) -> str:
    """``fault`` (see machine_fault) in words, naming its file (as ``name`` where given): "disk full (no
    space left on device) writing <file>", "read-only file system: cannot write <file>"..."""
    name = name or fault.filename or "a file"
    if fault.errno in DISK_FULL:
        return f"{DISK_FULL[fault.errno]} writing {name}"
    if fault.errno in NO_LOCKS:
        return f"this filesystem has no file locks (flock): cannot lock {name}; on Lustre, mount it with -o flock"
    return f"{NOT_WRITABLE[fault.errno]}: cannot write {name}"


def is_disk_full(fault: OSError) -> bool:
    return fault.errno in DISK_FULL


class CrashLog:
    """While it is open, a native crash of this process (a segfault, an abort) writes the Python stack of
    every thread to ``path`` (faulthandler). ``close`` stops that, removing the file where nothing was
    written, and gives faulthandler back to stderr where it wrote there before."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._was_enabled = faulthandler.is_enabled()
        self._file = open(self.path, "a")  # noqa: SIM115 - open while the process runs, closed by close()
        faulthandler.enable(self._file, all_threads=True)

    def close(self) -> None:
        faulthandler.disable()
        if self._was_enabled and sys.__stderr__ is not None:
            with contextlib.suppress(ValueError, OSError):  # a stderr without a file descriptor
                faulthandler.enable(sys.__stderr__)
        self._file.close()
        try:
            if self.path.stat().st_size == 0:
                self.path.unlink()
        except OSError:
            pass  # removed with its run, or a read-only directory
