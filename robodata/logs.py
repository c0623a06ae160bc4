"""Quiet by default: the CLI prints what the user needs (progress, results, findings); dependency chatter goes to
``<home>/logs/robodata.log``; ``robodata --verbose`` leaves every library's own output as it is.

The chatter and where each kind is stopped:

- the SVT-AV1 encoder's banner and config lines (``Svt[info]: ...``), printed from C to stderr by libsvtav1:
  ``SVT_LOG=1`` (errors only) before an encoder opens (:func:`quiet_encoders`); its errors still reach stderr.
  FFmpeg's own log is off in PyAV unless ``av.logging.set_level`` turns it on (``--verbose`` does).
- Ray's lines on ``ray.init`` (the token-authentication notice, "Started a local Ray instance") and Ray Data's
  ("Progress bars disabled"): under the CLI Ray's loggers are sent through Python logging (:func:`quiet_ray`), so
  into the log file; from the Python API (no CLI), :func:`quiet_ray` gives them the log file itself, and only
  their errors reach stderr. ``--verbose``, ``$ROBODATA_VERBOSE`` or ``$RAY_DATA_VERBOSE`` leaves them as Ray
  prints them. Ray's authentication is untouched.
- Python warnings and log records of other libraries (lerobot's "torchcodec ... falling back to pyav", ...):
  into the log file. robodata's own warnings (``RecordingWarning``) and log records at WARNING and above, and
  anyone's errors, still go to stderr.

Library entry points call :func:`quiet_encoders` / :func:`quiet_ray`; only the CLI (:func:`configured`) installs
handlers on the root logger, and only for the duration of the command. Outside the CLI robodata touches only Ray's
own loggers (the user's logging setup is theirs).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

VERBOSE_ENV = "ROBODATA_VERBOSE"  # set by ``--verbose``: child processes (Ray workers, runs) stay verbose too
LOG_FILE = "robodata.log"  # in the project home's logs folder (ProjectConfig.logs_dir)
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_active: _Routing | None = None


def verbose() -> bool:
    """Whether the user asked for every library's own output (``--verbose`` or ``$ROBODATA_VERBOSE``)."""
    return os.environ.get(VERBOSE_ENV, "").lower() not in ("", "0", "false", "no")


def quiet_encoders() -> None:
    """Before a video encoder opens: SVT-AV1 prints errors only (its info banner is chatter). A ``SVT_LOG`` or
    ``SVT_LOG_FILE`` the user set wins, and so does ``--verbose``."""
    if verbose() or "SVT_LOG" in os.environ or "SVT_LOG_FILE" in os.environ:
        return
    os.environ["SVT_LOG"] = "1"  # SVT-AV1's levels: 0 fatal, 1 error, 2 warn, 3 info (its default), 4 debug


RAY_LOGGERS = ("ray", "ray.data")  # Ray's and Ray Data's own loggers (each with a stderr handler, propagate off)


def ray_verbose() -> bool:
    """Whether Ray's own output is wanted as Ray prints it: ``--verbose`` or ``$RAY_DATA_VERBOSE``."""
    return verbose() or os.environ.get("RAY_DATA_VERBOSE", "").lower() not in ("", "0", "false", "no")


def quiet_ray(log_path: Callable[[], Path] | None = None) -> None:
    """After ``import ray`` (and again after ``import ray.data``), before ``ray.init``: Ray's notices are chatter.

    Under the CLI, Ray's loggers write through Python logging (so into the CLI's log file) instead of their own
    stderr handlers. Outside it, given ``log_path`` (the Python API's runs: :func:`robodata.parallel.start_ray_data`)
    and unless :func:`ray_verbose`, their stderr handlers give way to the log file at ``log_path()`` (resolved at
    the first record) and a stderr handler for their errors; without it, nothing changes (a Dagster run's compute
    log keeps Ray's lines). Idempotent; a later call with another ``log_path`` moves the file."""
    if _active is None:
        if log_path is not None and not ray_verbose():
            _library_ray(log_path)
        return
    for name in RAY_LOGGERS:
        if name not in sys.modules:
            continue
        lg = logging.getLogger(name)
        for h in list(lg.handlers):
            if h in _library_handlers or (isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)):
                _active.removed.append((lg, h))
                lg.removeHandler(h)
        if not lg.propagate:
            _active.propagate.append(lg)
            lg.propagate = True


def project_log_path() -> Path:
    """The log file of the project config in effect (``$ROBODATA_CONFIG``, ``./robodata.yaml``, the defaults)."""
    from robodata.config import load_config

    return load_config().logs_dir / LOG_FILE


_library_handlers: list[logging.Handler] = []  # [the log file, stderr for errors], once made


class _Stderr(logging.StreamHandler):
    """``sys.stderr`` as it is when a record comes (a notebook's, pytest's), as Ray's own handler writes."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        pass


def _library_ray(log_path: Callable[[], Path]) -> None:
    """Ray's loggers outside the CLI: their records into the log file, their errors also to stderr."""
    if not _library_handlers:
        to_user = _Stderr()
        to_user.setLevel(logging.ERROR)
        to_user.setFormatter(_ForTheUser())
        _library_handlers.extend([_LazyFile(log_path), to_user])
    to_file = _library_handlers[0]
    assert isinstance(to_file, _LazyFile)
    to_file.move_to(log_path)
    for name in RAY_LOGGERS:
        if name not in sys.modules:
            continue
        lg = logging.getLogger(name)
        for h in list(lg.handlers):
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler) \
                    and h not in _library_handlers:
                lg.removeHandler(h)  # Ray's console handler (Ray Data's session file handler stays)
        for h in _library_handlers:
            if h not in lg.handlers:
                lg.addHandler(h)


class _LazyFile(logging.Handler):
    """A log file opened (its folder made) at the first record: a quiet command leaves no file behind. The path
    comes from ``where`` then (the project home's ``logs/``); when that fails, records are dropped."""

    def __init__(self, where: Callable[[], Path]):
        super().__init__(logging.INFO)
        self.where = where
        self.path: Path | None = None
        self._stream: TextIO | None = None
        self._failed = False
        self._resolving = False
        self.setFormatter(logging.Formatter(_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        if self._failed or self._resolving:  # a record logged while the path is worked out is dropped
            return
        try:
            if self._stream is None:
                self._resolving = True
                try:
                    self.path = self.where()
                finally:
                    self._resolving = False
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._stream = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
            self._stream.write(self.format(record) + "\n")
            self._stream.flush()
        except Exception:  # noqa: BLE001 - a config that does not load, a read-only home: no log file, no noise
            self._failed = True

    def move_to(self, where: Callable[[], Path]) -> None:
        """Write to ``where()`` from the next record on (another project's home, say)."""
        if where is not self.where:
            if self._stream is not None:
                self._stream.close()
            self.where, self.path, self._stream, self._failed = where, None, None, False

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        super().close()


def _for_the_user(record: logging.LogRecord) -> bool:
    """What stays on stderr: robodata's own warnings and anyone's errors."""
    return record.levelno >= logging.ERROR or (
        record.levelno >= logging.WARNING and (record.name == "robodata" or record.name.startswith("robodata.")))


class _ForTheUser(logging.Formatter):
    """``warning: ...`` / ``error: ...``, as the CLI's own messages read."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {super().format(record)}"


class _Routing:
    """What :func:`configured` changed, to put back."""

    def __init__(self) -> None:
        self.handlers: list[logging.Handler] = []
        self.root_level = logging.getLogger().level
        self.showwarning = warnings.showwarning
        self.removed: list[tuple[logging.Logger, logging.Handler]] = []
        self.propagate: list[logging.Logger] = []

    def restore(self) -> None:
        root = logging.getLogger()
        for h in self.handlers:
            root.removeHandler(h)
            h.close()
        root.setLevel(self.root_level)
        warnings.showwarning = self.showwarning
        for lg, h in self.removed:
            lg.addHandler(h)
        for lg in self.propagate:
            lg.propagate = False


@contextlib.contextmanager
def configured(verbose_: bool, log_path: Callable[[], Path]) -> Iterator[None]:
    """The CLI's logging for one command. Quiet: chatter to ``log_path()`` (resolved at the first record), the
    user's messages to stderr. ``verbose_``: everything as the libraries print it, INFO logs included."""
    global _active
    if verbose_:
        was = os.environ.get(VERBOSE_ENV)
        os.environ[VERBOSE_ENV] = "1"
        root = logging.getLogger()
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(_FORMAT))
        previous, root_level = warnings.showwarning, root.level
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        with contextlib.suppress(ImportError):
            import av.logging

            av.logging.set_level(av.logging.INFO)  # FFmpeg's own lines (libx264's, the muxer's)
        try:
            yield
        finally:
            root.removeHandler(handler)
            root.setLevel(root_level)
            warnings.showwarning = previous
            if was is None:
                os.environ.pop(VERBOSE_ENV, None)
            else:
                os.environ[VERBOSE_ENV] = was
        return
    if _active is not None:  # nested (main called from a command): the outer routing holds
        yield
        return
    routing = _Routing()
    root = logging.getLogger()
    to_file = _LazyFile(log_path)
    to_user = logging.StreamHandler(sys.stderr)
    to_user.addFilter(_for_the_user)
    to_user.setFormatter(_ForTheUser())
    for h in (to_file, to_user):
        root.addHandler(h)
        routing.handlers.append(h)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    chatter = logging.getLogger("py.warnings")

    def showwarning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                    file: Any = None, line: str | None = None) -> None:
        if category.__module__.split(".")[0] == "robodata":  # robodata's own (RecordingWarning): for the user
            routing.showwarning(message, category, filename, lineno, file, line)
        else:
            chatter.info(warnings.formatwarning(message, category, filename, lineno, line).rstrip())

    warnings.showwarning = showwarning
    _active = routing
    quiet_encoders()
    quiet_ray()  # Ray already imported (by a plugin, say)
    try:
        yield
    finally:
        _active = None
        routing.restore()
