"""Where result rows go, and the checks that keep every input file safe.

* **Standard output** (no ``-o``, or ``-o -``) is written as it is.
* **A regular file** (or a path that does not exist yet) is written to a temporary
  file in the same directory and renamed over the target when the run ends, so an
  interrupted or failed run never leaves half a file in place of a good one. Ctrl-C
  still keeps the rows finished before it: they are renamed into place, as the
  contract asks. A symlink is followed: the file it points to is replaced, and the
  link stays a link.
* **Anything else** (``/dev/stdout``, ``/dev/full``, a FIFO, a terminal) is opened and
  written in place: a device is never renamed over.

:func:`check_distinct` refuses, before anything is opened, an output or a cache that
is the input, or a cache that is the output, by resolved path and by inode, so
``./in.csv``, a symlink or a hard link to the input are caught too.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from typing import IO

from ..exceptions import OutputError, UsageError


def _same(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): not the same file
        return False


def check_distinct(input_path: str | None, output: str | None, cache: str | None) -> None:
    """Raise :class:`UsageError` if the output or the cache is the input, or the cache
    is the output (``-`` and None stand for the standard streams and are never files)."""
    named = {"the input": input_path, "the output": output, "the cache": cache}
    files = {role: path for role, path in named.items() if path and path != "-"}
    pairs = (("the output", "the input"), ("the cache", "the input"),
             ("the cache", "the output"))
    for first, second in pairs:
        a, b = files.get(first), files.get(second)
        if a and b and _same(a, b):
            raise UsageError(f"{first} {a} is {second} ({b}); writing it would destroy it: "
                             f"choose another {first.removeprefix('the ')} file")


class Output:
    """The output of one run: ``stream`` to write, then :meth:`commit` or
    :meth:`discard`. ``name`` is how messages call it."""

    def __init__(self, path: str | None, stdout: IO[str]) -> None:
        self.path = path
        self._temporary: str | None = None
        self._target: str | None = None
        if not path or path == "-":
            self.stream, self.name, self.is_stdout = stdout, "standard output", True
            return
        self.name, self.is_stdout = path, False
        target = os.path.realpath(path)
        try:
            mode = os.stat(target).st_mode
        except FileNotFoundError:
            mode = None
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror}") from None
        try:
            if mode is not None and not stat.S_ISREG(mode):
                # a device, a FIFO, a terminal: written in place, never renamed over
                self.stream = open(target, "w", encoding="utf-8", newline="")  # noqa: SIM115
                return
            directory, base = os.path.split(target)
            fd, self._temporary = tempfile.mkstemp(prefix=f".{base}.", suffix=".partial",
                                                   dir=directory or ".")
            os.chmod(fd, stat.S_IMODE(mode) if mode is not None else _default_mode())
            self.stream = open(fd, "w", encoding="utf-8", newline="")  # noqa: SIM115
            self._target = target
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror}") from None

    def commit(self) -> None:
        """Close the output; a regular file's rows replace the target now."""
        if self.is_stdout:
            try:
                self.stream.flush()
            except OSError as exc:
                raise OutputError(f"cannot write {self.name}: {exc.strerror}") from None
            return
        try:
            self.stream.close()
            if self._temporary is not None and self._target is not None:
                os.replace(self._temporary, self._target)
                self._temporary = None
        except OSError as exc:
            self.discard()
            raise OutputError(f"cannot write {self.name}: {exc.strerror}") from None

    def discard(self) -> None:
        """Close the output and remove the temporary file: the target is untouched."""
        if self.is_stdout:
            return
        with contextlib.suppress(OSError):
            self.stream.close()
        if self._temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._temporary)
            self._temporary = None


def _default_mode() -> int:
    """What ``open(path, "w")`` would give a new file: 0o666 less the umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask
