"""Run geofuse in a child Python process and map its JSON-lines protocol onto Processing feedback.

Nothing here imports QGIS or geofuse: the plugin only talks to ``python -m geofuse.qgis_worker`` in the
interpreter the user configured (``GEOFUSE_PYTHON`` overrides the provider setting). Loading geofuse's
rasterio/numpy 2 wheels inside QGIS would mix two GDAL/PROJ builds with QGIS's own (DESIGN.md).

``feedback`` is anything with the :class:`qgis.core.QgsProcessingFeedback` methods used here
(``setProgress``, ``pushInfo``, ``pushWarning``, ``pushDebugInfo``, ``pushConsoleInfo``,
``isCanceled``); None means no feedback.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

#: Environment variable naming the child interpreter; overrides the provider setting (CI, tests).
ENV_VAR = "GEOFUSE_PYTHON"
#: Where users set the interpreter in QGIS.
SETTINGS_PATH = "Settings \u25b8 Options \u25b8 Processing \u25b8 Providers \u25b8 geofuse"
#: Seconds a cancelled child gets to clean up after SIGTERM before it is killed.
TERMINATE_GRACE_S = 5.0
#: Variables QGIS may set for its own GDAL/PROJ/Python that must not leak into geofuse's environment.
_DROP_ENV = ("PYTHONHOME", "PYTHONPATH", "GDAL_DATA", "GDAL_DRIVER_PATH", "PROJ_LIB", "PROJ_DATA")

# Finds geofuse in the child without importing it (importing geofuse loads torch: seconds).
_PROBE = r"""
import importlib.util, json, re, sys
from pathlib import Path
spec = importlib.util.find_spec("geofuse")
out = {"executable": sys.executable, "python_version": sys.version.split()[0], "origin": None, "version": None}
if spec is not None and spec.origin:
    root = Path(spec.origin).parent
    out["origin"] = str(root)
    out["worker"] = (root / "qgis_worker.py").is_file()
    m = re.search(r'__version__\s*=\s*["\']([^"\']+)', (root / "__init__.py").read_text(encoding="utf-8"))
    out["version"] = m.group(1) if m else None
print(json.dumps(out))
"""


class ChildError(Exception):
    """geofuse failed in the child: ``message`` is the library's, ``traceback`` for the debug log."""

    def __init__(self, message: str, *, traceback: str = "", kind: str = "", exit_code: int | None = None,
                 stderr: str = ""):
        super().__init__(message)
        self.message, self.traceback, self.kind, self.exit_code, self.stderr = (
            message, traceback, kind, exit_code, stderr)


class Cancelled(ChildError):
    """The user cancelled; the child was stopped and its partial outputs removed."""


class InterpreterError(ChildError):
    """The configured interpreter is missing, is not Python, or has no (usable) geofuse."""


# ---------------------------------------------------------------------------------------------- interpreter


def _shebang_python(script: str | None) -> str | None:
    """The interpreter in the ``#!`` line of an installed ``geofuse`` script (its environment has geofuse)."""
    if not script:
        return None
    try:
        with open(script, "rb") as fh:
            first = fh.readline(512).decode("utf-8", "replace").strip()
    except OSError:
        return None
    if first.startswith("#!"):
        cand = first[2:].strip().split()[0] if first[2:].strip() else ""
        if cand and os.path.basename(cand).startswith("python") and os.path.isfile(cand):
            return cand
    return None


def configured_python(setting: str | None = None) -> str:
    """The child interpreter: ``$GEOFUSE_PYTHON``, else the provider setting, else the Python of an
    installed ``geofuse`` command on PATH, else ``python3``."""
    for cand in (os.environ.get(ENV_VAR), setting):
        if cand and str(cand).strip():
            return str(cand).strip()
    return _shebang_python(shutil.which("geofuse")) or shutil.which("python3") or "python3"


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DROP_ENV}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


_NEUTRAL_CWD: str | None = None


def neutral_cwd() -> str:
    """An empty directory to run the child in: ``python -c``/``-m`` put the working directory first on
    ``sys.path``, and a ``geofuse`` folder there must not shadow the configured environment's."""
    global _NEUTRAL_CWD
    if _NEUTRAL_CWD is None or not os.path.isdir(_NEUTRAL_CWD):
        _NEUTRAL_CWD = tempfile.mkdtemp(prefix="geofuse-qgis-")
    return _NEUTRAL_CWD


def _setup_hint() -> str:
    return (f"Set 'Python interpreter with geofuse' in {SETTINGS_PATH} (or the {ENV_VAR} environment variable) "
            "to the python of an environment where geofuse is installed, e.g. /path/to/venv/bin/python "
            "after `pip install geofuse`")


def probe(python: str, timeout: float = 60.0) -> dict[str, Any]:
    """Where geofuse lives in ``python`` (without importing it); raises :class:`InterpreterError`."""
    try:
        cp = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, timeout=timeout,
                            env=child_env(), stdin=subprocess.DEVNULL, cwd=neutral_cwd())
    except FileNotFoundError:
        raise InterpreterError(f"The Python interpreter {python!r} does not exist. " + _setup_hint() + ".") from None
    except PermissionError:
        raise InterpreterError(f"{python!r} cannot be executed (permission denied). " + _setup_hint() + ".") from None
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InterpreterError(f"Could not start {python!r} ({exc}). " + _setup_hint() + ".") from None
    try:
        info = json.loads(cp.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise InterpreterError(f"{python!r} did not answer as a Python 3 interpreter (exit code {cp.returncode}: "
                               f"{(cp.stderr or cp.stdout).strip()[-300:]}). " + _setup_hint() + ".",
                               stderr=cp.stderr) from None
    if not info.get("origin"):
        raise InterpreterError(f"geofuse is not installed in the Python environment of {python} "
                               f"(Python {info.get('python_version')}). " + _setup_hint() + ".")
    if not info.get("worker"):
        raise InterpreterError(f"geofuse {info.get('version')} in {python} is too old for this plugin (it has no "
                               "geofuse.qgis_worker). Upgrade it: pip install -U geofuse.")
    return info


def fingerprint(info: dict[str, Any]) -> str:
    """Cache key: interpreter, geofuse version and the size/mtime of every module of the package."""
    h = hashlib.sha1()
    h.update(json.dumps([os.path.realpath(info["executable"]), info.get("version"), info["origin"]]).encode())
    root = Path(info["origin"])
    for p in sorted(root.rglob("*.py")):
        try:
            st = p.stat()
        except OSError:
            continue
        h.update(f"{p.relative_to(root)}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def describe(python: str, cache_dir: str | os.PathLike | None = None, *, refresh: bool = False,
             timeout: float = 300.0) -> dict[str, Any]:
    """The registry as the child sees it (``geofuse.qgis_worker describe``), cached in ``cache_dir``.

    The cache is keyed by :func:`fingerprint`, so QGIS starts without running geofuse as long as
    neither the interpreter nor geofuse changed.
    """
    info = probe(python)
    key = fingerprint(info)
    cache = Path(cache_dir) / f"describe-{key}.json" if cache_dir else None
    if cache is not None and cache.is_file() and not refresh:
        try:
            return json.loads(cache.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass
    result = run_child(python, "describe", None, None, timeout=timeout)
    desc = result["describe"]
    desc["fingerprint"] = key
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            for old in cache.parent.glob("describe-*.json"):
                old.unlink()
            tmp = cache.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(desc), encoding="utf-8")
            os.replace(tmp, cache)
        except OSError:
            pass
    return desc


# ---------------------------------------------------------------------------------------------- outputs


def _stat(p: Path) -> tuple[int, int] | None:
    try:
        st = p.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _remove(p: Path) -> None:
    try:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        elif p.exists() or p.is_symlink():
            p.unlink()
    except OSError:
        pass


def remove_partial_outputs(outputs: Iterable[str | os.PathLike], before: dict[Path, Any] | None = None) -> None:
    """Delete outputs written by an unfinished run and geofuse's ``.NAME.partial-*`` temporaries.

    A file that existed before the run (``before``) and is unchanged is kept.
    """
    for out in outputs:
        p = Path(out)
        if before is None or _stat(p) != before.get(p):
            _remove(p)
        if p.parent.is_dir():
            for q in p.parent.glob(f".{glob_escape(p.name)}.partial-*"):
                _remove(q)


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


# ---------------------------------------------------------------------------------------------- child


class _NullFeedback:
    def isCanceled(self) -> bool:
        return False

    def __getattr__(self, name):
        return lambda *a, **k: None


def _reader(stream, q: queue.Queue, tag: str) -> None:
    try:
        for line in iter(stream.readline, ""):
            q.put((tag, line.rstrip("\r\n")))
    except (OSError, ValueError):
        pass
    finally:
        q.put((tag, None))


def _stop(proc: subprocess.Popen, grace: float) -> None:
    """SIGTERM (the worker then cleans up), then SIGKILL after ``grace`` seconds; the whole group."""
    if proc.poll() is not None:
        return
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGTERM)
        else:  # pragma: no cover - Windows
            proc.terminate()
    except OSError:
        pass
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        try:
            if os.name == "posix":
                os.killpg(proc.pid, signal.SIGKILL)
            else:  # pragma: no cover
                proc.kill()
        except OSError:
            pass
        proc.wait()


class _Interrupts:
    """While a child runs in the main thread, SIGINT/SIGTERM cancel it (``qgis_process`` + Ctrl+C)."""

    def __init__(self) -> None:
        self.hit = False
        self._old: dict[int, Any] = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    self._old[sig] = signal.signal(sig, self._handler)
                except (ValueError, OSError):  # pragma: no cover - embedded interpreters may refuse
                    pass
        return self

    def _handler(self, signum, frame):
        self.hit = True

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            try:
                signal.signal(sig, old if old is not None else signal.SIG_DFL)
            except (ValueError, OSError):  # pragma: no cover
                pass
        return False


def run_child(python: str, command: str, job: dict[str, Any] | None, feedback: Any = None, *,
              outputs: Sequence[str | os.PathLike] = (), timeout: float | None = None, poll: float = 0.1,
              grace: float = TERMINATE_GRACE_S, module: str = "geofuse.qgis_worker") -> dict[str, Any]:
    """Run ``python -m geofuse.qgis_worker COMMAND JOB`` and return its ``result`` message.

    ``progress``/``info``/``warning`` messages go to ``feedback`` as they arrive; the child's tracebacks
    go to ``pushDebugInfo``. When ``feedback.isCanceled()`` becomes true (or SIGINT/SIGTERM arrives while
    running in the main thread) the child gets SIGTERM, then SIGKILL after ``grace`` s, the ``outputs``
    (and their partial temporaries) are removed, and :class:`Cancelled` is raised. A failure raises
    :class:`ChildError` with the library's message; outputs of a failed run are removed as well.
    """
    fb = feedback if feedback is not None else _NullFeedback()
    argv = [python, "-u", "-m", module, command] + ([json.dumps(job)] if job is not None else [])
    outs = [Path(o) for o in outputs]
    before = {p: _stat(p) for p in outs}
    kwargs: dict[str, Any] = {}
    if os.name == "posix":
        kwargs["start_new_session"] = True  # its own process group: a cancel stops its helpers too
    else:  # pragma: no cover - Windows
        kwargs["creationflags"] = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0) | getattr(
            subprocess, "CREATE_NO_WINDOW", 0)
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                text=True, encoding="utf-8", errors="replace", env=child_env(), bufsize=1,
                                cwd=neutral_cwd(), **kwargs)
    except FileNotFoundError:
        raise InterpreterError(f"The Python interpreter {python!r} does not exist. " + _setup_hint() + ".") from None
    except OSError as exc:
        raise InterpreterError(f"Could not start {python!r} ({exc}). " + _setup_hint() + ".") from None
    q: queue.Queue = queue.Queue()
    threads = [threading.Thread(target=_reader, args=(s, q, t), daemon=True)
               for s, t in ((proc.stdout, "out"), (proc.stderr, "err"))]
    for t in threads:
        t.start()
    try:
        return _supervise(proc, q, threads, fb, python, outs, before, timeout, poll, grace)
    finally:
        if proc.poll() is None:  # an exception in a feedback callback: never leave the child behind
            _stop(proc, grace)
        for t in threads:
            t.join(1.0)
        for stream in (proc.stdout, proc.stderr):
            try:
                stream.close()
            except (OSError, AttributeError):
                pass


def _supervise(proc, q, threads, fb, python, outs, before, timeout, poll, grace) -> dict[str, Any]:
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    stderr: list[str] = []
    open_streams = 2
    t0 = time.monotonic()
    cancelled = timed_out = False
    with _Interrupts() as intr:
        while open_streams:
            if fb.isCanceled() or intr.hit:
                cancelled = True
                break
            if timeout is not None and time.monotonic() - t0 > timeout:
                timed_out = True
                break
            try:
                tag, line = q.get(timeout=poll)
            except queue.Empty:
                continue
            if line is None:
                open_streams -= 1
                continue
            if tag == "err":
                stderr.append(line)
                del stderr[:-200]
                continue
            try:
                msg = json.loads(line)
                kind = msg.get("type")
            except (ValueError, AttributeError):
                if line.strip():
                    fb.pushConsoleInfo(line)
                continue
            if kind == "progress":
                fb.setProgress(float(msg.get("percent", 0.0)))
            elif kind == "info":
                fb.pushInfo(str(msg.get("message", "")))
            elif kind == "warning":
                fb.pushWarning(str(msg.get("message", "")))
            elif kind == "error":
                error = msg
                if msg.get("traceback"):
                    fb.pushDebugInfo(str(msg["traceback"]))
            elif kind == "result":
                result = msg
            else:
                fb.pushConsoleInfo(line)
        if cancelled or timed_out:
            _stop(proc, grace)
            remove_partial_outputs(outs, before)
            if cancelled:
                raise Cancelled("Cancelled: geofuse was stopped and its partial output removed", kind="Cancelled",
                                exit_code=proc.returncode)
            raise ChildError(f"geofuse did not finish within {timeout:.0f} s and was stopped", kind="Timeout",
                             exit_code=proc.returncode, stderr="\n".join(stderr))
    rc = proc.wait()
    tail = "\n".join(stderr[-40:])
    if rc == 0 and result is not None and error is None:
        result.pop("type", None)
        return result
    remove_partial_outputs(outs, before)
    if tail:
        fb.pushDebugInfo(tail)
    if error is not None:
        cls = InterpreterError if error.get("error") == "UsageError" else ChildError
        raise cls(str(error.get("message") or "geofuse failed"), traceback=str(error.get("traceback") or ""),
                  kind=str(error.get("error") or ""), exit_code=rc, stderr=tail)
    if "No module named" in tail and "geofuse" in tail:
        raise InterpreterError(f"geofuse is not installed in the Python environment of {python}. "
                               + _setup_hint() + ".", exit_code=rc, stderr=tail)
    last = tail.strip().splitlines()[-1] if tail.strip() else "no message"
    raise ChildError(f"geofuse stopped unexpectedly (exit code {rc}): {last}", kind="Crash", exit_code=rc,
                     stderr=tail)


def main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - debugging aid
    """``python runner.py PYTHON`` prints the description the plugin would build its algorithms from."""
    argv = list(sys.argv[1:] if argv is None else argv)
    print(json.dumps(describe(configured_python(argv[0] if argv else None)), indent=1))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
