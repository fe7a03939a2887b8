"""Run a Processing job's Python program with ``/opt/ml`` mapped to the job's directory.

Started by the processing engine as ``<venv python> processing_launch.py ROOT REASON_FILE -- <python
arguments>`` (run by path, so that it imports nothing of the twin). In the scikit-learn container the
job's files live under ``/opt/ml/processing/...``; here they live under ``ROOT/opt/ml/processing/...``.
The engine rewrites ``/opt/ml`` in the arguments and the environment; this launcher also maps the
paths a script hard-codes: the Python file functions (``open``, ``io.open``, ``os.open``, ``os.stat``,
``os.lstat``, ``os.listdir``, ``os.scandir``, ``os.mkdir``, ``os.remove`` ...) see ``/opt/ml/x`` as
``ROOT/opt/ml/x``, so ``open("/opt/ml/processing/output/a.csv", "w")``, ``os.makedirs``, ``glob``,
``pathlib`` and pandas' ``read_csv`` / ``to_csv`` work unchanged. Code that opens files in C
(e.g. pyarrow) or in a child process does not get the mapping: pass such paths as arguments.

The program's uncaught exception is printed as Python prints it (the job's log), and its last line
(``ValueError: ...``) is written to REASON_FILE: the job's FailureReason.
"""

from __future__ import annotations

import builtins
import io
import os
import runpy
import sys
import traceback

PREFIX = "/opt/ml"


def _mapper(root: str):
    def mapped(path):
        if isinstance(path, int):
            return path
        try:
            text = os.fspath(path)
        except TypeError:
            return path
        if isinstance(text, bytes):
            if text == PREFIX.encode() or text.startswith(PREFIX.encode() + b"/"):
                return os.fsencode(root) + text
            return path
        if text == PREFIX or text.startswith(PREFIX + "/"):
            return root + text
        return path

    return mapped


def install(root: str) -> None:
    mapped = _mapper(root.rstrip("/"))

    def one(fn):
        def wrapper(path, *args, **kwargs):
            return fn(mapped(path), *args, **kwargs)

        wrapper.__wrapped__ = fn
        wrapper.__name__ = getattr(fn, "__name__", "wrapper")
        return wrapper

    def two(fn):
        def wrapper(src, dst, *args, **kwargs):
            return fn(mapped(src), mapped(dst), *args, **kwargs)

        wrapper.__wrapped__ = fn
        wrapper.__name__ = getattr(fn, "__name__", "wrapper")
        return wrapper

    opener = one(builtins.open)
    builtins.open = opener
    io.open = opener
    for name in ("open", "stat", "lstat", "mkdir", "rmdir", "remove", "unlink", "chdir", "access", "utime"):
        setattr(os, name, one(getattr(os, name)))
    # listdir/scandir take an optional path (default ".")
    for name in ("listdir", "scandir"):
        fn = getattr(os, name)

        def optional(path=".", _fn=fn):
            return _fn(mapped(path))

        setattr(os, name, optional)
    for name in ("rename", "replace", "symlink", "link"):
        setattr(os, name, two(getattr(os, name)))


def main(argv: list[str]) -> int:
    root, reason_file, sep, *rest = argv
    assert sep == "--", argv
    install(root)
    # python's own options before the program: -u/-B/-O... are harmless here, -m / -c choose the program
    while rest and rest[0].startswith("-") and rest[0] not in ("-m", "-c"):
        rest = rest[1:]
    if not rest:
        print("aws_twin: no program given to python", file=sys.stderr)
        return 2
    try:
        if rest[0] == "-m":
            sys.argv = [rest[1], *rest[2:]]
            runpy.run_module(rest[1], run_name="__main__", alter_sys=True)
        elif rest[0] == "-c":
            sys.argv = ["-c", *rest[2:]]
            exec(compile(rest[1], "<string>", "exec"), {"__name__": "__main__"})
        else:
            script = rest[0]
            sys.argv = list(rest)
            sys.path.insert(0, os.path.dirname(_mapper(root)(script)) or ".")
            runpy.run_path(_mapper(root)(script), run_name="__main__")
    except SystemExit as exc:
        code = exc.code
        if code is None or code == 0:
            return 0
        if isinstance(code, int):
            _reason(reason_file, f"the program exited with code {code}")
            return code
        print(code, file=sys.stderr)
        _reason(reason_file, str(code))
        return 1
    except BaseException as exc:  # the program's error: print it as python does, keep its last line
        traceback.print_exc()
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        _reason(reason_file, last)
        return 1
    return 0


def _reason(path: str, text: str) -> None:
    line = " ".join(text.split())  # one line
    with io.FileIO(path, "w") as fh:
        fh.write(line.encode("utf-8", "replace")[:1000])


if __name__ == "__main__":
    # run by path: this folder is sys.path[0]; the program must not import the twin's modules by accident
    if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
        sys.path.pop(0)
    sys.stdout.reconfigure(line_buffering=True)
    sys.stderr.reconfigure(line_buffering=True)
    sys.exit(main(sys.argv[1:]))
