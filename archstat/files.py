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
import tempfile
from pathlib import Path
from typing import Iterator

from archstat.errors import ArchstatError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; once the block ends without an error it replaces
    ``path``, with the permissions a plain ``open(path, "w")`` would give (``mkstemp`` makes 0600); on
    any error it is removed and ``path`` is untouched."""
    path = Path(path)
    if path.is_dir():
        raise ArchstatError(f"cannot write {path}: it is a folder")
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    except OSError as exc:
        raise ArchstatError(f"cannot write {path}: {exc.strerror or exc}") from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ArchstatError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> Path:
    """``text`` (UTF-8, ``\\n`` line ends on every platform) into ``path``, atomically (``replacing``)."""
    with replacing(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
    return Path(path)
