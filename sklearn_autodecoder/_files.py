"""Writing files so that a reader never sees a partial one.

:func:`write_atomically` writes through a temporary file of a unique name,
created in the target's own directory (``tempfile.mkstemp``: exclusive
creation, so no planted file or symlink is ever written through), flushes
it to disk, then renames it over the target (``os.replace``, atomic on
POSIX and Windows). Concurrent writers to one path each write their own
temporary file; the last rename wins, and every state of the target is a
complete file. An interrupted write removes its temporary file.
"""

import os
import tempfile

# The process's umask, read once at import (reading it means setting it, which
# is not thread-safe): temporary files get the permissions open() would give.
_UMASK = os.umask(0)
os.umask(_UMASK)


def _fsync_directory(directory):
    """Flush a directory entry (the rename) to disk where the OS allows it."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:  # Windows cannot open directories; the rename is durable there
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def write_atomically(path, write):
    """Call ``write(file)`` on a temporary binary file, then rename it to ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        The file to create or replace.
    write : callable
        ``write(file)`` writes the whole content to the open binary file.

    Raises
    ------
    TypeError
        If ``path`` is not a str or os.PathLike.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}.")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    descriptor, part = tempfile.mkstemp(
        prefix=f".{os.path.basename(path)}.", suffix=".part", dir=directory
    )
    try:
        with os.fdopen(descriptor, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        # mkstemp creates the file readable by its owner only.
        os.chmod(part, 0o666 & ~_UMASK)
        os.replace(part, path)
    except BaseException:
        try:
            os.remove(part)
        except OSError:
            pass
        raise
    _fsync_directory(directory)
