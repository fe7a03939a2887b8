"""``getResolvedOptions`` as in aws-glue-libs: resolve ``--NAME value`` job arguments."""

from __future__ import annotations

import argparse

__all__ = ["GlueArgumentError", "getResolvedOptions"]


class GlueArgumentError(Exception):
    pass


class GlueArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        raise GlueArgumentError(message)


def getResolvedOptions(args, options):  # noqa: N802 - Glue's name
    """Return ``{name: value}`` for each of ``options`` from ``args`` (``sys.argv``).

    Every named option is required; unknown arguments are ignored; Glue's reserved arguments
    (``--JOB_NAME``, ``--JOB_RUN_ID``, ``--job-bookmark-option``, ``--TempDir`` ...) are accepted.
    """
    parser = GlueArgumentParser(add_help=False)
    reserved = {
        "RedshiftTempDir",
        "TempDir",
        "JOB_ID",
        "JOB_RUN_ID",
        "SECURITY_CONFIGURATION",
        "encryption-type",
    }
    parser.add_argument("--job-bookmark-option", required=False)
    parser.add_argument("--continuation-option", required=False)
    for name in sorted(reserved):
        parser.add_argument("--" + name, required=False)
    for option in options:
        if option in reserved:
            continue
        parser.add_argument("--" + option, required=True)
    parsed, _extra = parser.parse_known_args(list(args[1:]))
    return vars(parsed)
