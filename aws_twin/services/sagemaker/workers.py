"""Training workers: each job's XGBoost runs in a process of its own, forked from a warm parent.

A training job runs the built-in XGBoost in a process of its own, as SageMaker runs a container:
StopTrainingJob and MaxRuntimeInSeconds end it with a signal, and a crash ends the job, not the
twin. A fresh interpreter per job (``python -m aws_twin.services.sagemaker.xgb``) paid the
interpreter's start and ``import xgboost`` (numpy, and scipy where scikit-learn is installed: about
5 s of a 7 s job) every time. Here every worker is forked from a multiprocessing *forkserver* that
imported them once (:data:`PRELOAD`): started by :func:`warm_up` in the background when the twin
starts, else by the first job. A worker's stdout and stderr go to a pipe that the training engine
reads line by line into the job's CloudWatch log stream, as it read the subprocess's.

The forkserver runs as long as the twin (it exits when the twin does); the workers it forks see the
twin's environment as it was when the forkserver started.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading

#: what the forkserver imports once, before it forks any worker (the training code and its libraries)
PRELOAD = ["numpy", "xgboost", "aws_twin.services.sagemaker.xgb"]

_lock = threading.Lock()
_context = None
#: set once :func:`warm_up` has started the forkserver (the twin's state reports it)
WARMED = threading.Event()


def context():
    """The forkserver multiprocessing context, its preload set (once per process)."""
    global _context
    with _lock:
        if _context is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(PRELOAD)
            _context = ctx
        return _context


def warm_up() -> None:
    """Start the forkserver now (it imports :data:`PRELOAD` in its own process), so that the first
    job does not wait for it."""
    from multiprocessing import forkserver

    context()
    forkserver.ensure_running()
    WARMED.set()


def _worker(spec_path: str, cwd: str, output) -> None:
    """The worker process: stdout and stderr to ``output``, then the job (exit code 0/2/3, as
    :func:`aws_twin.services.sagemaker.xgb.worker_main` returns)."""
    preloaded = "xgboost" in sys.modules  # forked from the warm parent, or importing cold
    fd = output.fileno()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    output.close()
    sys.stdout = open(1, "w", encoding="utf-8", errors="replace", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding="utf-8", errors="replace", buffering=1, closefd=False)  # noqa: SIM115
    os.chdir(cwd)
    from .xgb import worker_main

    sys.exit(worker_main(spec_path, preloaded=preloaded))


class Worker:
    """One training worker, with the part of ``subprocess.Popen``'s interface the engine uses:
    ``stdout`` (text, line by line), ``wait()``, ``poll()``, ``returncode``, ``terminate()``,
    ``kill()``, ``pid``."""

    def __init__(self, spec_path: str, cwd: str, name: str = "training-worker"):
        ctx = context()
        reader, writer = ctx.Pipe(duplex=False)
        self._process = ctx.Process(target=_worker, args=(spec_path, cwd, writer), name=name, daemon=True)
        try:
            self._process.start()
        except BaseException:
            reader.close()
            raise
        finally:
            writer.close()  # the worker holds the write end now: EOF here when it exits
        self.pid = self._process.pid
        self.stdout = open(  # noqa: SIM115
            os.dup(reader.fileno()), encoding="utf-8", errors="replace", newline=None
        )
        reader.close()
        self.returncode: int | None = None

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the worker to exit (only the job's own thread calls this); its exit code."""
        self._process.join(timeout)
        code = self._process.exitcode
        if code is not None:
            self.returncode = code
            self.stdout.close()
        return code

    def poll(self) -> int | None:
        """The exit code once :meth:`wait` saw the worker exit, else None (never blocks, never reads
        the worker's status, which only the waiting thread does)."""
        return self.returncode

    def terminate(self) -> None:
        self._process.terminate()

    def kill(self) -> None:
        self._process.kill()
