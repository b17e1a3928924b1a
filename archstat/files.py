"""Writing a file so that nothing the user had is lost: a temporary file beside the target, renamed over it.

``os.replace`` within one folder is atomic on POSIX and Windows: a reader sees the old file or the new
one, never half of either, and a run killed mid-write leaves the old file as it was (and at worst a
hidden ``.NAME.XXXX.tmp.EXT`` beside it).  The temporary name keeps the target's extension, so that a
writer that picks its format from the name (``savefig``) writes the right one.  An ``OSError`` (a missing
or read-only folder, ``/proc``, a file where a folder should be) becomes one line naming the path.
"""
from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterator

from archstat.errors import ArchstatError


def _umask() -> int:
    """The process umask, read without changing it where Linux shows it (``/proc/self/status``); else
    set and restored at once (``os.umask`` has no read-only form)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; once the block ends without an error it replaces
    ``path``; on any error it is removed and ``path`` is untouched.

    What the user had stays as it was: a symbolic link is written through (its target is replaced, the
    link kept), an existing file keeps its permissions, and a file the user may not write (read-only)
    is refused, as ``open(path, "w")`` would; a new file gets the permissions ``open`` would give it
    (``mkstemp`` makes 0600)."""
    shown = Path(path)
    path = Path(os.path.realpath(path))
    if path.is_dir():
        raise ArchstatError(f"cannot write {shown}: it is a folder")
    existing = path.exists()
    mode = stat.S_IMODE(path.stat().st_mode) if existing else 0o666 & ~_umask()
    if existing and (not os.access(path, os.W_OK) or not mode & 0o222):  # marked read-only (even for root)
        raise ArchstatError(f"cannot write {shown}: it is read-only")
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    except OSError as exc:
        raise ArchstatError(f"cannot write {shown}: {exc.strerror or exc}") from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ArchstatError(f"cannot write {shown}: {exc.strerror or exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_figure(fig: Any, path: str | Path, **savefig_kwargs: Any) -> Path:
    """A pyplot figure saved into ``path`` atomically (``replacing``; ``savefig`` reads the format from
    the extension the temporary name keeps), then closed, written or not (pyplot keeps every open
    figure otherwise)."""
    import matplotlib.pyplot as plt  # here, not at import time: the ground floor stays light

    try:
        with replacing(path) as tmp:
            fig.savefig(tmp, **savefig_kwargs)
    finally:
        plt.close(fig)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    """``text`` (UTF-8, ``\\n`` line ends on every platform) into ``path``, atomically (``replacing``)."""
    with replacing(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
    return Path(path)
