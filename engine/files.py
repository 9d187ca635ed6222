"""Files that appear only complete (a killed run never leaves one half-written), and whether a
folder can take files. Used by the scripts, the checkpoint saver and mmadapter's file backend."""
import os
import shutil
import tempfile
from contextlib import contextmanager


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
def atomic_path(path: str):
    """A temporary path beside `path` (`path`.tmp) for the block to write a file or a folder to;
    when the block ends without error it is fsynced and renamed over `path`, else removed and
    the old `path` stays."""
    path = os.fspath(path)
    tmp = f'{path}.tmp'
    _remove(tmp)
    try:
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
