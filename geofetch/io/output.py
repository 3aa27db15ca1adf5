"""Where result rows go, and the checks that keep every input file safe.

* **Standard output** (no ``-o``, or ``-o -``) is written as it is.
* **A regular file** (or a path that does not exist yet) is written to a temporary
  file in the same directory and renamed over the target when the run ends, so an
  interrupted or failed run never leaves half a file in place of a good one. Ctrl-C
  still keeps the rows finished before it: they are renamed into place, as the
  contract asks. A symlink is followed: the file it points to is replaced, and the
  link stays a link.
* **One of geofetch's own descriptors** (``/dev/stdout``, ``/dev/stderr``,
  ``/dev/fd/N``, ``/proc/self/fd/N``) is written through a copy of that descriptor,
  so its file position is the shell's: ``{ echo a; geofetch ... -o /dev/stdout;
  echo b; } > f`` keeps all three in order.
* **Anything else** (``/dev/full``, a FIFO, a terminal, another process's
  descriptor) is opened and written in place, appending: a device or a
  descriptor's file is never renamed over.
* A regular file in a directory geofetch cannot create files in is written in place.

:func:`check_distinct` refuses, before anything is opened, an output or a cache that
is the input, or a cache that is the output, by resolved path and by inode, so
``./in.csv``, a symlink or a hard link to the input are caught too; so is standard
output when it is the input file (``geofetch geocode in.csv >> in.csv``). Only
regular files (or paths not created yet) can clash: ``/dev/stdin`` and
``/dev/stdout`` on one terminal are not "the same file".
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from typing import IO

from ..exceptions import OutputError, UsageError


def _same(a: str, b: str) -> bool:
    """Whether paths ``a`` and ``b`` name one regular file (or one path not yet
    created): writing one would destroy the other."""
    try:
        first, second = os.stat(a), os.stat(b)
    except OSError:  # one of them does not exist (yet): the same only by its path
        return os.path.realpath(a) == os.path.realpath(b)
    return stat.S_ISREG(first.st_mode) and os.path.samestat(first, second)


def _descriptor_file(stream: IO[str] | None) -> os.stat_result | None:
    """The status of the regular file behind ``stream``'s descriptor, if it has one."""
    try:
        status = os.fstat(stream.fileno()) if stream is not None else None
    except (AttributeError, OSError, ValueError):  # a StringIO, a closed stream
        return None
    return status if status is not None and stat.S_ISREG(status.st_mode) else None


def check_distinct(input_path: str | None, output: str | None, cache: str | None,
                   stdout: IO[str] | None = None) -> None:
    """Raise :class:`UsageError` if the output or the cache is the input, or the cache
    is the output (``-`` and None stand for the standard streams and are never files);
    ``stdout``, the stream written when there is no output file, must not be the
    input file either."""
    named = {"the input": input_path, "the output": output, "the cache": cache}
    files = {role: path for role, path in named.items() if path and path != "-"}
    pairs = (("the output", "the input"), ("the cache", "the input"),
             ("the cache", "the output"))
    for first, second in pairs:
        a, b = files.get(first), files.get(second)
        if a and b and _same(a, b):
            raise UsageError(f"{first} {a} is {second} ({b}); writing it would destroy it: "
                             f"choose another {first.removeprefix('the ')} file")
    source = files.get("the input")
    written = _descriptor_file(stdout) if "the output" not in files else None
    if source and written is not None:
        try:
            same = os.path.samestat(os.stat(source), written)
        except OSError:
            same = False
        if same:
            raise UsageError(f"standard output is the input ({source}); writing it would "
                             "destroy it: choose another output file (-o)")


def _own_descriptor(path: str) -> int | None:
    """The descriptor number when ``path`` names one of this process's own open
    descriptors (``/dev/stdout``, ``/dev/fd/N``, ``/proc/self/fd/N``), else None."""
    current = os.path.abspath(path)
    own = ("/proc/self/fd/", f"/proc/{os.getpid()}/fd/", "/dev/fd/")
    for _ in range(40):
        for prefix in own:
            if current.startswith(prefix) and current[len(prefix):].isdigit():
                return int(current[len(prefix):])
        try:
            target = os.readlink(current)
        except OSError:  # not a link
            return None
        current = os.path.normpath(os.path.join(os.path.dirname(current), target))
    return None


def _descriptor_path(path: str) -> bool:
    """Whether ``path`` is, or is a symlink (chain) to, an open file descriptor's
    link: ``/dev/stdout``, ``/dev/fd/N``, ``/proc/self/fd/N``."""
    current = os.path.abspath(path)
    for _ in range(40):
        if current.startswith("/dev/fd/") or re.match(r"/proc/[^/]+/fd/", current):
            return True
        try:
            target = os.readlink(current)
        except OSError:  # not a link
            return False
        current = os.path.normpath(os.path.join(os.path.dirname(current), target))
    return False


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
        try:
            mode: int | None = os.stat(path).st_mode  # through links, /dev/stdout too
        except FileNotFoundError:
            mode = None
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror}") from None
        number = _own_descriptor(path)
        if number is not None:
            # the descriptor the shell gave us: written through a copy of it, so the
            # file offset is shared (``{ echo a; geofetch ... -o /dev/stdout; } > f``)
            try:
                self.stream = open(os.dup(number), "w", encoding="utf-8",  # noqa: SIM115
                                   newline="")
            except OSError as exc:
                raise OutputError(f"cannot write {path}: {exc.strerror}") from None
            return
        try:
            if (mode is not None and not stat.S_ISREG(mode)) or _descriptor_path(path):
                # a device, a FIFO, a terminal, a descriptor: written in place, appending
                self.stream = self._in_place(path, os.O_APPEND)
                return
            target = os.path.realpath(path)
            directory, base = os.path.split(target)
            try:
                fd, temporary = tempfile.mkstemp(prefix=f".{base}.", suffix=".partial",
                                                 dir=directory or ".")
            except PermissionError:
                if mode is None:
                    raise
                self.stream = self._in_place(path, os.O_TRUNC)  # as the shell's > would
                return
            self._temporary = temporary
            os.chmod(fd, stat.S_IMODE(mode) if mode is not None else _default_mode())
            self.stream = open(fd, "w", encoding="utf-8", newline="")  # noqa: SIM115
            self._target = target
        except OSError as exc:
            self.discard()
            raise OutputError(f"cannot write {path}: {exc.strerror}") from None

    @staticmethod
    def _in_place(path: str, flag: int) -> IO[str]:
        fd = os.open(path, os.O_WRONLY | flag)
        return open(fd, "w", encoding="utf-8", newline="")  # noqa: SIM115

    def commit(self) -> None:
        """Close the output; a regular file's rows replace the target now."""
        if self.is_stdout:
            try:
                self.stream.flush()
            except BrokenPipeError:
                raise
            except OSError as exc:
                raise OutputError(f"cannot write {self.name}: {exc.strerror}") from None
            return
        try:
            self.stream.close()
            if self._temporary is not None and self._target is not None:
                os.replace(self._temporary, self._target)
                self._temporary = None
        except BrokenPipeError:
            self.discard()
            raise
        except OSError as exc:
            self.discard()
            raise OutputError(f"cannot write {self.name}: {exc.strerror}") from None

    def discard(self) -> None:
        """Close the output and remove the temporary file: the target is untouched."""
        if self.is_stdout:
            return
        stream = getattr(self, "stream", None)  # None when opening it failed
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
        if self._temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._temporary)
            self._temporary = None


def _default_mode() -> int:
    """What ``open(path, "w")`` would give a new file: 0o666 less the umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask
