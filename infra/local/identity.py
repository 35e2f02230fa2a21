"""Caller identities on the local stack, kept consistent the way AWS keeps them.

moto stamps every SQS message with one fixed SenderId and answers GetCallerIdentity for
credentials it did not issue with one fixed user. Real AWS ties both to the caller: the
SenderId of a message is the sender's unique id, the same one GetCallerIdentity returns as
UserId. redress relies on that to tell who really sent an approved task, so this module
restores it: each access key is its own IAM user (`arn:aws:sts::<account>:user/<key>`,
UserId `AIDA` + 17 characters derived from the key), and messages carry their sender's id.
"""

from __future__ import annotations

import hashlib
import re
import threading
from typing import Iterable

from moto.sqs import models as sqs_models
from moto.sts import models as sts_models

# SigV4: "Credential=<access key>/<date>/...".
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
_current = threading.local()


def user_id(access_key: str) -> str:
    """The stable unique id of the local user behind an access key."""
    return "AIDA" + hashlib.sha256(access_key.encode()).hexdigest()[:17].upper()


class IdentityMiddleware:
    """Remembers, per request thread, whose credentials signed the request."""

    def __init__(self, app) -> None:
        self.app = app

    def __call__(self, environ: dict, start_response) -> Iterable[bytes]:
        match = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
        _current.access_key = match.group(1) if match else None
        return self.app(environ, start_response)


def install() -> None:
    """Patch moto's SQS messages and STS caller identity (once, at start-up)."""
    original_init = sqs_models.Message.__init__

    def message_init(self, *args, **kwargs) -> None:
        original_init(self, *args, **kwargs)
        key = getattr(_current, "access_key", None)
        if key:
            self.sender_id = user_id(key)

    sqs_models.Message.__init__ = message_init

    original_identity = sts_models.STSBackend.get_caller_identity

    def get_caller_identity(self, access_key_id: str, region: str) -> tuple[str, str, str]:
        uid, arn, account = original_identity(self, access_key_id, region)
        # moto's answer for credentials it did not issue: one shared "moto" user. The key
        # moto passes in is not always the signing one, so take it from the request.
        key = getattr(_current, "access_key", None) or access_key_id
        if arn.endswith(":user/moto"):
            return user_id(key), f"{arn.rsplit('/', 1)[0]}/{key}", account
        return uid, arn, account

    sts_models.STSBackend.get_caller_identity = get_caller_identity
