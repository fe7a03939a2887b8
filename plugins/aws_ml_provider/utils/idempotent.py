"""Exactly-once creates when an answer can be lost.

A create whose request reached AWS but whose answer did not (a connection reset, a 5xx from a
load balancer after the work was done) is retried by botocore, and the retry either gets the first
request's result (an idempotency token: CreateModelPackage's ``ClientToken``, which botocore fills
in and keeps across its retries) or fails on what the first request made ("already exists",
ConcurrentRunsExceededException). So the operators here:

- look the resource up by its deterministic key first (a retried task finds what its first try
  made);
- send the create with botocore's own retries (:func:`retried_create`: standard mode, exponential
  backoff with jitter, :data:`CREATE_ATTEMPTS` attempts), never a sleep loop of their own;
- when the create fails anyway (botocore's retry met "already exists", or its attempts ran out),
  look the resource up again and attach to it when the create did happen (:func:`create_once`).

Creates that have no such answer for a retry (CreateTrainingJob, CreateEndpoint / UpdateEndpoint)
are sent once instead (:func:`single_attempt`), followed by the look-up after a transient failure
(:func:`is_transient_failure`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from botocore.config import Config
from botocore.exceptions import ClientError

from ..triggers.base import CONNECTION_ERRORS, is_transient

T = TypeVar("T")
NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})
#: attempts botocore makes of a create (standard mode: up to 1 + 2 + 4 + 8 s of backoff between them)
CREATE_ATTEMPTS = 5


def create_retries(attempts: int = CREATE_ATTEMPTS) -> Config:
    """botocore's standard retry mode (throttling, 5xx, connection errors; backoff with jitter)."""
    return Config(retries={"mode": "standard", "total_max_attempts": attempts})


def is_transient_failure(exc: BaseException) -> bool:
    """An error a retry of the same request might not meet: connection errors, 5xx, throttling."""
    if isinstance(exc, ClientError):
        return is_transient(
            exc.response.get("Error"), exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        )
    return isinstance(exc, CONNECTION_ERRORS)


def _client_with_config(hook: Any, client: Any, config: Config) -> Any:
    """``hook.get_client_type(config=config)`` (the provider's own client: same session, endpoint,
    verify, with ``config``), built with ``client``'s botocore data loader: the
    new session's own loader would parse the service's API model again (SageMaker's: 0.4-0.6 s on
    a busy 2-core machine; 0.04 s with the loader shared)."""
    loader = getattr(client, "_loader", None)
    if loader is None:  # not a botocore client (a test double): the provider's path as it is
        return hook.get_client_type(config=config)
    get_session = hook.get_session

    def session_sharing_the_loader(*args: Any, **kwargs: Any) -> Any:
        session = get_session(*args, **kwargs)
        botocore_session = getattr(session, "_session", session)  # boto3 Session -> botocore's
        botocore_session.register_component("data_loader", loader)
        return session

    hook.get_session = session_sharing_the_loader  # on this hook only, for this one client
    try:
        return hook.get_client_type(config=config)
    finally:
        del hook.get_session


@contextmanager
def _operations_with(hook: Any, config: Config, operations: tuple[str, ...]) -> Iterator[None]:
    """Within the block, the hook's client (``hook.conn``, ``hook.get_conn()``) sends ``operations``
    (boto3 method names) through a client with the connection's botocore settings plus ``config``;
    every other call keeps the client's own. (The methods are shadowed on the client instance, so it
    stays the botocore client the hook's other properties expect.)"""
    client = hook.conn
    base = copy.deepcopy(hook.config) if getattr(hook, "config", None) is not None else Config()
    other = _client_with_config(hook, client, base.merge(config))
    for name in operations:
        setattr(client, name, getattr(other, name))
    try:
        yield
    finally:
        for name in operations:
            client.__dict__.pop(name, None)


def single_attempt(hook: Any, *operations: str):
    """Within the block, ``operations`` are sent once, without botocore's retries."""
    return _operations_with(hook, NO_RETRIES, operations)


def retried_create(hook: Any, *operations: str, attempts: int = CREATE_ATTEMPTS):
    """Within the block, ``operations`` are retried by botocore (:func:`create_retries`), whatever
    retries the connection configures."""
    return _operations_with(hook, create_retries(attempts), operations)


def create_once(
    lookup: Callable[[], T | None], create: Callable[[], T], what: str, log: Any
) -> tuple[T, bool]:
    """``(resource, created)``: ``lookup()`` first; else ``create()`` (retried by botocore, see
    :func:`retried_create`); when the create fails, ``lookup()`` again: the resource a retried
    request met ("already exists"), or that a request whose answer was lost made, is used."""
    existing = lookup()
    if existing is not None:
        return existing, False
    try:
        return create(), True
    except Exception as exc:
        try:
            found = lookup()
        except Exception:
            log.warning("%s: the look-up after the failed create failed too.", what, exc_info=True)
            found = None
        if found is None:
            raise
        log.warning(
            "%s: the create failed (%s: %s), but it was done (a request whose answer was lost): "
            "using what it created.",
            what,
            type(exc).__name__,
            exc,
        )
        return found, False
