"""Caller identities on the local stack, kept consistent the way AWS keeps them.

moto stamps every SQS message with one fixed SenderId, answers GetCallerIdentity for
credentials it did not issue with one fixed user, and lets anyone assume any role ARN,
even one that does not exist. Real AWS ties the first two to the caller: the SenderId of
a message is the sender's unique id, the same one GetCallerIdentity returns as UserId.
redress relies on that to tell who really sent an approved task, so this module restores
it: each access key moto did not issue is its own IAM user
(`arn:aws:sts::<account>:user/<key>`, UserId `AIDA` + 17 characters derived from the
key), and messages carry their sender's id: for credentials from AssumeRole that is the
assumed role's `AROA…:<session>`, as GetCallerIdentity answers.

sts:AssumeRole is faithful for missing roles: assuming a role that does not exist in the
IAM of the ARN's account answers AccessDenied (HTTP 403, query-protocol error XML,
"User: <caller arn> is not authorized to perform: sts:AssumeRole on resource: <role
arn>"); a RoleArn that is not an IAM role ARN answers ValidationError. The role's path
must match too (the whole ARN is compared). One exception, as in an AWS Organization:
`OrganizationAccountAccessRole` (path `/`) exists in every account, created in that
account's IAM the first time it is assumed. So a test can assume it into, say,
111111111111, create a role there with the returned credentials, and then assume that.
Credentials from AssumeRole act in the role's account (moto maps the temporary key to
it): calls signed with them reach that account's resources, and GetCallerIdentity
answers `arn:aws:sts::<account>:assumed-role/<role>/<session>`.

IAM users created with CreateUser get AWS-shaped unique ids (`AIDA` + 17 upper-case
letters and digits; moto would give 20 random lower-case characters), so STS's UserId
and the SenderId SQS stamps on their messages look as they do on AWS; their ARNs are
moto's, as on AWS (`arn:aws:iam::<account>:user/<path><name>`). Access keys moto did not
issue keep working as before (see above).

Not emulated: trust policies, permissions and session policies are never evaluated (any
caller may assume any existing role, and every call is allowed); ExternalId and MFA are
not checked.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import uuid
from typing import Iterable
from xml.sax.saxutils import escape

from moto.iam import models as iam_models
from moto.iam.exceptions import NotFoundException
from moto.sqs import models as sqs_models
from moto.sts import models as sts_models
from moto.sts.exceptions import STSValidationError
from moto.utilities.utils import get_partition
from werkzeug.exceptions import HTTPException

# SigV4: "Credential=<access key>/<date>/<region>/...".
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/")
# An IAM role ARN: partition, account, path and name.
_ROLE_ARN = re.compile(r"arn:(aws[a-z-]*):iam::(\d{12}):role(/(?:[!-~]*/)?)([\w+=,.@-]+)")
# Created by AWS Organizations in every member account.
ORGANIZATION_ROLE = "OrganizationAccountAccessRole"
_current = threading.local()
_organization_role_lock = threading.Lock()


def user_id(access_key: str) -> str:
    """The stable unique id of the local user behind an access key."""
    return "AIDA" + hashlib.sha256(access_key.encode()).hexdigest()[:17].upper()


def account_of(access_key: str | None) -> str:
    """The account moto serves a request signed with this key from, decided as moto
    decides it (MOTO_ACCOUNT_ID, else the account that issued the key, else the
    default account)."""
    if "MOTO_ACCOUNT_ID" in os.environ:
        return os.environ["MOTO_ACCOUNT_ID"]
    return iam_models.get_account_id_from(access_key or "")


def caller_identity(access_key: str, region: str) -> tuple[str, str, str]:
    """(UserId, Arn, Account) as GetCallerIdentity answers for this key."""
    account = account_of(access_key)
    backend = sts_models.sts_backends[account][get_partition(region)]
    return backend.get_caller_identity(access_key, region)


class IdentityMiddleware:
    """Remembers, per request thread, whose credentials signed the request."""

    def __init__(self, app) -> None:
        self.app = app

    def __call__(self, environ: dict, start_response) -> Iterable[bytes]:
        match = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
        _current.access_key = match.group(1) if match else None
        _current.region = match.group(2) if match else None
        return self.app(environ, start_response)


class AssumeRoleAccessDenied(HTTPException):
    """STS's AccessDenied for a role the caller may not (here: cannot) assume."""

    code = 403

    def __init__(self, caller_arn: str, role_arn: str) -> None:
        message = (
            f"User: {caller_arn} is not authorized to perform: sts:AssumeRole "
            f"on resource: {role_arn}"
        )
        super().__init__(
            description=(
                '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
                "<Error><Type>Sender</Type><Code>AccessDenied</Code>"
                f"<Message>{escape(message)}</Message></Error>"
                f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
            )
        )

    def get_headers(self, environ=None, scope=None) -> list[tuple[str, str]]:
        return [("Content-Type", "text/xml"), ("X-Amzn-ErrorType", "AccessDenied")]


def _role_exists(role_arn: str, caller_account: str) -> bool:
    """Whether the role exists in its account; creates the Organizations role there
    on first use."""
    match = _ROLE_ARN.fullmatch(role_arn)
    if not match:
        raise STSValidationError(f"{role_arn} is invalid")
    partition, account, path, name = match.groups()
    iam = iam_models.iam_backends[account][partition]
    try:
        return iam.get_role(name).arn == role_arn
    except NotFoundException:
        pass
    if name != ORGANIZATION_ROLE or path != "/":
        return False
    with _organization_role_lock:
        try:
            iam.get_role(name)
        except NotFoundException:
            trust = (
                '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":'
                f'{{"AWS":"arn:{partition}:iam::{caller_account}:root"}},'
                '"Action":"sts:AssumeRole"}]}'
            )
            iam.create_role(
                role_name=name,
                assume_role_policy_document=trust,
                path="/",
                permissions_boundary=None,
                description="Created by AWS Organizations (local stack stand-in).",
                tags=[],
                max_session_duration=None,
            )
    return True


def _aws_shaped_user_ids() -> None:
    """IAM users get `AIDA…` unique ids, as on AWS."""
    original_user_init = iam_models.User.__init__

    def user_init(self, *args, **kwargs) -> None:
        original_user_init(self, *args, **kwargs)
        self.id = "AIDA" + uuid.uuid4().hex[:17].upper()

    iam_models.User.__init__ = user_init


def install() -> None:
    """Patch moto's SQS messages, STS caller identity and AssumeRole, and IAM user ids
    (once, at start-up)."""
    _aws_shaped_user_ids()
    original_init = sqs_models.Message.__init__

    def message_init(self, *args, **kwargs) -> None:
        original_init(self, *args, **kwargs)
        key = getattr(_current, "access_key", None)
        if key:
            region = getattr(_current, "region", None) or "us-east-1"
            self.sender_id = caller_identity(key, region)[0]

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

    original_assume_role = sts_models.STSBackend.assume_role

    def assume_role(self, region_name: str, role_session_name: str, role_arn: str, **kwargs):
        # `self` is the STS backend of the caller's account.
        if not _role_exists(role_arn, self.account_id):
            key = getattr(_current, "access_key", None) or ""
            caller_arn = self.get_caller_identity(key, region_name)[1]
            raise AssumeRoleAccessDenied(caller_arn, role_arn)
        return original_assume_role(
            self,
            region_name=region_name,
            role_session_name=role_session_name,
            role_arn=role_arn,
            **kwargs,
        )

    sts_models.STSBackend.assume_role = assume_role
