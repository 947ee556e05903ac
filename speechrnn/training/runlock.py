"""One run at a time in a run folder: two runs writing one folder would mix their files silently.

``<run_dir>/.speechrnn.lock`` holds ``<pid> <host>`` of the run writing the folder, and that run
holds an exclusive ``fcntl.flock`` on it. flock rather than ``os.open(O_CREAT | O_EXCL)``: the
kernel drops the lock the moment its holder dies, however it dies (Ctrl+C, SIGKILL, out of
memory), so a lock left by a dead run is never mistaken for a live one and needs no guess from
its pid (which the system may have given to a new process). The pid and host in the file only
name the holder in the message to a second run. flock is advisory and local to one machine on
some network file systems; the folder is meant to be written from one machine.

A run that takes over a killed run's folder can set that run's files aside
(:func:`set_aside_killed_run`), so its own checkpoints are not mistaken for the killed run's.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from speechrnn.errors import SpeechRNNError
from speechrnn.processes import HOST

if TYPE_CHECKING:  # typing.Self is Python 3.11+; the package supports 3.10
    from typing import Self

log = logging.getLogger(__name__)

LOCK_NAME = ".speechrnn.lock"
KILLED_RUN_FILES = ("checkpoints", "config.yaml", "results.json")  # what a run writes in its folder


class RunLock:
    """Exclusive use of ``run_dir``; a context manager, or ``acquire()`` then ``release()``."""

    def __init__(self, run_dir: str | Path, flag: str = "--run_dir") -> None:
        self.run_dir = Path(run_dir)
        self.flag = flag  # the option that named the folder, for the messages
        self.path = self.run_dir / LOCK_NAME
        self.fd: int | None = None
        self.taken_over: list[str] = []  # ``[pid, host]`` of the killed run whose lock this one took over

    def acquire(self) -> Self:
        """Take the folder, or raise SpeechRNNError naming it and the run that holds it."""
        fd = self._open_locked()
        previous = os.read(fd, 256).decode(errors="replace").split()
        if previous:
            _report_stale(previous)
            self.taken_over = previous
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {HOST}\n".encode(), 0)
        self.fd = fd
        return self

    def _open_locked(self) -> int:
        """A descriptor of the lock file, flocked by us."""
        while True:
            try:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as err:
                raise SpeechRNNError(f"cannot write the run folder {self.run_dir} ({err.strerror}); pass a "
                                     f"writable {self.flag}") from err
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 256).decode(errors="replace").split() or ["?"]
                os.close(fd)
                raise SpeechRNNError(
                    f"run folder {self.run_dir} is in use by another run (pid {' on '.join(holder)}); "
                    f"wait for it to finish, stop it, or pass another {self.flag}"
                ) from None
            # the holder before us may have removed the file after we opened it: lock the file there now
            if _same_file(fd, self.path):
                return fd
            os.close(fd)

    def release(self) -> None:
        """Remove the lock file and let the next run in; nothing happens if it is not held."""
        if self.fd is None:
            return
        self.path.unlink(missing_ok=True)  # while still locked, so no run locks the removed file
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> Self:
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()


def set_aside_killed_run(run_dir: str | Path, holder: list[str]) -> tuple[Path, list[str]] | None:
    """Move the files a killed run left in ``run_dir`` (KILLED_RUN_FILES) into ``killed-run-pid<pid>/``.

    A fresh fit in the folder would otherwise find the killed run's ``best.ckpt`` and ``last.ckpt``
    beside its own ``best-v1.ckpt``, and the names say the old ones are the run's. Nothing is
    deleted. Returns the folder and the names moved, or None when the run left none of them.
    """
    run_dir = Path(run_dir)
    left = [name for name in KILLED_RUN_FILES if (run_dir / name).exists()]
    if not left:
        return None
    aside = run_dir / f"killed-run-pid{holder[0]}"
    for n in range(2, 1000):  # a pid the system gave out again
        if not aside.exists():
            break
        aside = run_dir / f"killed-run-pid{holder[0]}-{n}"
    aside.mkdir()
    for name in left:
        os.replace(run_dir / name, aside / name)
    return aside, left


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _report_stale(holder: list[str]) -> None:
    """Log the run whose lock file was left behind: its lock went when it died."""
    log.warning("taking over run folder lock file left by pid %s, which has ended", " on ".join(holder))
