"""Writing files so that a reader never sees a partial one.

:func:`write_atomically` writes through a temporary file of a unique name,
created in the target's own directory (``tempfile.mkstemp``: exclusive
creation, so no planted file or symlink is ever written through), flushes
it to disk, then renames it over the target (``os.replace``, atomic on
POSIX and Windows). Concurrent writers to one path each write their own
temporary file; the last rename wins, and every state of the target is a
complete file. An interrupted write removes its temporary file, except when
the process is killed outright (``kill -9``, a power cut): then a hidden
``.<name>.<random>.part`` file may remain next to the target, which is
never damaged.
"""

import os
import stat
import tempfile

# Temporary names keep this much of the target's name, so that a target
# whose name is near the file system's limit (255 bytes) can still be written.
_NAME_KEPT = 64


def _umask():
    """The process's umask, without setting it (which is not thread-safe) where the OS allows."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return _IMPORT_UMASK


# The fallback where /proc is absent (macOS, Windows): read once, at import.
_IMPORT_UMASK = os.umask(0)
os.umask(_IMPORT_UMASK)


def _mode(path):
    """The permissions ``open(path, "wb")`` would leave: the target's own, or the umask's."""
    try:
        info = os.lstat(path)
    except OSError:
        info = None
    if info is not None and stat.S_ISREG(info.st_mode):
        return stat.S_IMODE(info.st_mode) & 0o777  # not setuid and the like
    return 0o666 & ~_umask()


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

    The file gets the permissions ``open(path, "wb")`` would give it: those
    of the file it replaces, or ``0o666`` less the umask for a new file. A
    symlink at ``path`` is replaced, not written through.

    Parameters
    ----------
    path : str, bytes or os.PathLike
        The file to create or replace.
    write : callable
        ``write(file)`` writes the whole content to the open binary file.

    Raises
    ------
    TypeError
        If ``path`` is not a str, bytes or os.PathLike.
    FileNotFoundError
        If the directory of ``path`` does not exist.
    """
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}.")
    path = os.fsdecode(path)
    directory = os.path.dirname(os.path.abspath(path))
    mode = _mode(path)
    try:
        descriptor, part = tempfile.mkstemp(
            prefix=f".{os.path.basename(path)[:_NAME_KEPT]}.", suffix=".part", dir=directory
        )
    except FileNotFoundError:
        raise FileNotFoundError(
            f"Cannot write {path!r}: its directory {directory!r} does not exist."
        ) from None
    try:
        # mkstemp creates the file readable by its owner only. fchmod acts on
        # the file itself, never on what its name may point to by then.
        if hasattr(os, "fchmod"):
            os.fchmod(descriptor, mode)
        else:  # Windows: only the read-only bit exists there
            os.chmod(part, mode)
        with os.fdopen(descriptor, "wb") as file:
            descriptor = None  # closed by the file from now on
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(part, path)
    except BaseException:
        if descriptor is not None:
            os.close(descriptor)
        try:
            os.remove(part)
        except OSError:
            pass
        raise
    _fsync_directory(directory)
