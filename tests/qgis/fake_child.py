"""A stand-in for ``python -m geofuse.qgis_worker JOB`` used by the QGIS plugin tests.

It speaks the worker's JSON-lines protocol without geofuse. ``GEOFUSE_FAKE_MODE`` selects the behaviour:

``ok``       progress 0..100, an info and a warning, then a result (exit 0);
``error``    a geofuse-style error message with a traceback (exit 2);
``hang``     writes a partial output the way geofuse.write_raster does (``.NAME.partial-*`` beside the
             output) and the output itself, records its pid, reports progress, then sleeps forever;
``crash``    writes to stderr and exits 1 without a protocol message;
``garbage``  prints lines that are not JSON before a result.

``GEOFUSE_FAKE_PIDFILE``: where ``hang`` writes its pid.
"""

import json
import os
import sys
import time


def emit(kind, **fields):
    sys.stdout.write(json.dumps({"type": kind, **fields}) + "\n")
    sys.stdout.flush()


def main():
    mode = os.environ.get("GEOFUSE_FAKE_MODE", "ok")
    args = sys.argv[1:]
    job = json.loads(args[-1]) if args and args[-1].startswith("{") else {}
    outs = [v for k, v in sorted(job.items()) if k in ("out", "out_ms", "out_pan", "html", "csv") and v]
    if mode == "ok":
        for pct in (0, 50, 100):
            emit("progress", percent=pct)
        emit("info", message="fake info")
        emit("warning", message="fake warning")
        emit("result", outputs={"OUTPUT": outs[0] if outs else None}, echo=job)
        return 0
    if mode == "error":
        emit("progress", percent=5)
        emit("error", message="Fake grid mismatch. Expected: aligned grids. Got: a shift. Fix: align them.",
             error="GridMismatchError", traceback="Traceback (most recent call last):\n  fake frame\n")
        return 2
    if mode == "crash":
        sys.stderr.write("Fatal Python error: fake crash\n")
        return 1
    if mode == "garbage":
        print("this is not json")
        print("[1, 2")
        emit("result", outputs={})
        return 0
    if mode == "hang":
        for out in outs:
            d, name = os.path.split(out)
            with open(os.path.join(d, f".{name}.partial-fake"), "w") as fh:
                fh.write("partial")
            with open(out, "w") as fh:
                fh.write("half-written")
        pidfile = os.environ.get("GEOFUSE_FAKE_PIDFILE")
        if pidfile:
            with open(pidfile, "w") as fh:
                fh.write(str(os.getpid()))
        emit("progress", percent=10)
        emit("info", message="fake child hangs")
        while True:
            time.sleep(0.2)
    emit("error", message=f"unknown fake mode {mode}", error="UsageError")
    return 1


if __name__ == "__main__":
    sys.exit(main())
