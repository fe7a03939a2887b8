"""``python -m aws_twin serve --host 127.0.0.1 --port 4566``"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import sys
import time


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aws_twin", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the twin server")
    serve.add_argument("--host", default=os.environ.get("AWS_TWIN_HOST", "127.0.0.1"))
    serve.add_argument(
        "--port", type=int, default=int(os.environ.get("AWS_TWIN_PORT", "4566")), help="0: any free port"
    )
    serve.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SERVICE:OPERATION:key=value,...",
        help="quota/fault rule, e.g. textract:AnalyzeExpense:rps=5 or 'glue:*:throttle=0.3,error=0.1,latency=50'"
        " (also AWS_TWIN_FAULTS, ';'-separated)",
    )
    serve.add_argument("--seed", type=int, default=None, help="seed for the fault dice")
    serve.add_argument(
        "--strict",
        action="store_true",
        default=os.environ.get("AWS_TWIN_STRICT") == "1",
        help="answer InternalFailure when a response does not fit botocore's output shape",
    )
    serve.add_argument(
        "--work-dir", default=os.environ.get("AWS_TWIN_WORK_DIR"), help="scratch space for jobs"
    )
    serve.add_argument(
        "--review-token", default=os.environ.get("AWS_TWIN_REVIEW_TOKEN"), help="A2I review page token"
    )
    serve.add_argument(
        "--viewer-token",
        default=os.environ.get("AWS_TWIN_VIEWER_TOKEN"),
        help="token of the S3 object viewer GET /_twin/s3/<bucket>/<key>?token= (default: a random one)",
    )
    serve.add_argument(
        "--control-token",
        default=os.environ.get("AWS_TWIN_CONTROL_TOKEN"),
        help="token of the control endpoints /_twin/reset, /_twin/faults, /_twin/state (header "
        "X-Twin-Control-Token; default: a random one, printed at start-up)",
    )
    serve.add_argument("--log-level", default=os.environ.get("AWS_TWIN_LOG_LEVEL", "WARNING"))
    return parser


def serve(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("werkzeug").setLevel(max(logging.WARNING, logging.getLogger().level))
    from werkzeug.serving import make_server

    from .core.app import Twin
    from .core.faults import FaultInjector, FaultRule

    specs = list(args.fault)
    specs += [s for s in os.environ.get("AWS_TWIN_FAULTS", "").split(";") if s.strip()]
    faults = FaultInjector([FaultRule.parse(s) for s in specs], seed=args.seed)
    work_dir = args.work_dir
    if not work_dir:
        import tempfile

        work_dir = tempfile.mkdtemp(prefix="aws_twin-")
    token = args.review_token or secrets.token_urlsafe(16)
    viewer_token = args.viewer_token or secrets.token_urlsafe(16)
    control_token = args.control_token or secrets.token_urlsafe(16)
    twin = Twin(
        faults=faults,
        strict=args.strict,
        work_dir=work_dir,
        review_token=token,
        viewer_token=viewer_token,
        control_token=control_token,
    )
    server = make_server(args.host, args.port, twin, threaded=True)
    server.daemon_threads = True
    host, port = server.server_address[:2]
    twin.url = f"http://{host}:{port}"

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(f"aws_twin control token {control_token}", flush=True)
    print(f"aws_twin review page {twin.url}/review/?token={token}", flush=True)
    print(f"aws_twin object viewer {twin.url}/_twin/s3/<bucket>/<key>?token={viewer_token}", flush=True)
    print(f"aws_twin ready {twin.url}", flush=True)
    twin.warm_up()  # heavy imports (xgboost for training workers and endpoints) in the background
    logging.getLogger("aws_twin").info("started in %.2fs", time.perf_counter() - started)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        twin.shutdown()
        server.server_close()
    # jobs still running (an OCR page, a training epoch) are the work of the twin's pool threads:
    # the interpreter would join them at exit and SIGTERM would wait for them; nothing they do
    # must outlive the server, so leave now (state lives in memory; worker processes are gone)
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(0)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
