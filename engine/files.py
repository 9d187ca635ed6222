"""Files that appear only complete (a killed run never leaves one half-written), a full disk as
one line, whether a folder can take files, and a lock that one process at a time holds. Used by
the scripts, the checkpoint saver and mmadapter's file backend."""
import errno
import fcntl
import os
import shutil
import tempfile
from contextlib import contextmanager
from typing import IO, Optional, Tuple

# What a write raises on a full disk, or past a disk quota.
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(RuntimeError):
    """A file could not be written for lack of space; the message names the folder, the space
    needed and the space free."""


def _size(path: str) -> int:
    return os.path.getsize(path) if os.path.isfile(path) else 0


def _bytes(n: float) -> str:
    for unit in ('bytes', 'KiB', 'MiB', 'GiB'):
        if n < 1024 or unit == 'GiB':
            return f'{n:.0f} {unit}' if unit == 'bytes' else f'{n:.1f} {unit}'
        n /= 1024


@contextmanager
def no_space_as_error(path: str, needed: Optional[int] = None, what: str = '', partial: str = ''):
    """The block writes `path` (`what`, by default its name); a full disk or quota in it (OSError
    ENOSPC / EDQUOT) becomes a DiskFullError naming the folder, the space needed where known and
    the space free. `partial`: the temporary file of an atomic write (atomic_path), removed then;
    the space needed is `needed` bytes, else the larger of the previous `path` and what reached
    `partial`, and the previous `path` is said to be unchanged. Other errors pass."""
    try:
        yield
    except OSError as e:
        if e.errno not in NO_SPACE:
            raise
        if partial:
            needed = needed or max(_size(path), _size(partial))
            _remove(partial)
        folder = os.path.dirname(os.path.abspath(path))
        free = shutil.disk_usage(folder).free
        kept = ''
        if partial:  # (an append, e.g. summary.csv's row, may have left part of it)
            kept = f'; {os.path.basename(path)} there is unchanged' if os.path.exists(path) else (
                '; the files there are unchanged')
        raise DiskFullError(
            f'no space left in {folder} for {what or os.path.basename(path)} ('
            f'{f"about {_bytes(needed)} needed, " if needed else ""}{_bytes(free)} free): free space there or '
            f'write elsewhere{kept}') from None


def _remove(path: str):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def _fsync(path: str):
    for name in os.listdir(path) if os.path.isdir(path) else ['']:
        with open(os.path.join(path, name) if name else path, 'rb') as f:
            os.fsync(f.fileno())


@contextmanager
def atomic_path(path: str, needed: Optional[int] = None, what: str = ''):
    """A temporary path beside `path` (`path`.tmp) for the block to write a file or a folder to;
    when the block ends without error it is fsynced and renamed over `path`, else removed and
    the old `path` stays. A full disk is a DiskFullError (see no_space_as_error: `needed`, `what`)."""
    path = os.fspath(path)
    tmp = f'{path}.tmp'
    _remove(tmp)
    try:
        with no_space_as_error(path, needed, what, partial=tmp):
            yield tmp
            _fsync(tmp)
            if os.path.isdir(tmp) and os.path.lexists(path):
                # os.replace cannot replace a folder that holds files: move it aside first
                old = f'{path}.old'
                _remove(old)
                os.replace(path, old)
                os.replace(tmp, path)
                _remove(old)
            else:
                os.replace(tmp, path)
    finally:
        _remove(tmp)


@contextmanager
def atomic_open(path: str, mode: str = 'w', **kwargs):
    """open() for writing whose file appears at `path` only complete (see atomic_path)."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as f:
        yield f


def write_problem(folder: str) -> str:
    """'' if files can be created in `folder` (existing or not), else why not and what to do.
    Probes by creating and removing a file in the nearest existing folder (permission bits do not
    stop root)."""
    existing = os.path.abspath(folder)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        return f'{existing} is a file, so no folder can be made there; pass another folder'
    try:
        fd, probe = tempfile.mkstemp(prefix='.write-test-', dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        return f'cannot write in {existing} ({e.strerror}); pass a folder you can write to'
    return ''


class HeldLock:
    """An exclusive lock (flock) on a file, held until release() or the end of a `with` block, or
    the end of the process, killed or not: the kernel drops it then (once data-loader workers
    forked from the process, which share it, have exited too). HeldLock(None) holds nothing."""

    def __init__(self, file: Optional[IO]):
        self._file = file

    def release(self):
        if self._file is not None and not self._file.closed:
            fcntl.flock(self._file, fcntl.LOCK_UN)  # (also for the copies forked workers hold)
            self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def try_lock(path: str) -> Tuple[Optional[HeldLock], str]:
    """(the lock of file `path`, created if need be), or (None, the id of the process that holds
    it, '' if unknown) without waiting. The file is not written: a folder stays as it was."""
    f = os.fdopen(os.open(path, os.O_RDONLY | os.O_CREAT, 0o644), 'r')
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _flock_holder(f.fileno())
        f.close()
        return None, holder
    return HeldLock(f), ''


def _flock_holder(fd: int) -> str:
    """The id of the process holding the flock on fd's file, from /proc/locks (Linux; '' where it
    cannot tell): lines like '1: FLOCK  ADVISORY  WRITE 1234 fe:00:5678 0 EOF' (pid, device, inode)."""
    st = os.fstat(fd)
    key = f'{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}'
    try:
        with open('/proc/locks') as f:
            for fields in map(str.split, f):
                if len(fields) >= 8 and fields[1] == 'FLOCK' and fields[5] == key:  # (a waiter's line has '->')
                    return fields[4]
    except OSError:
        pass
    return ''
