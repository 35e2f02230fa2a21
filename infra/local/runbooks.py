"""The runbooks the local SSM Automation stand-in knows: the catalog, AWS's parameter checks,
and the emulated effects.

Every document comes from redress's runbook catalog, infra/runbooks/catalog.json (built by
infra/runbooks/build_catalog.py from ../shared/reference/), the same file the redress binary
embeds. A document outside the catalog is answered AutomationDefinitionNotFoundException by
stack.py.

Parameters (`resolve_parameters`) are checked the way StartAutomationExecution checks them,
in this order, and the first problem is answered with InvalidAutomationExecutionParametersException
(HTTP 400) and AWS's wording where it is known:

  - a parameter the document does not declare:
        Undefined execution inputs: [NAME, ...]
    CONFIRMED wording ("Undefined execution inputs: [AutomationAssumeRole]" for one name):
    https://github.com/aws-solutions/automated-security-response-on-aws (its control-runbook
    code: forwarding undeclared parameters "makes SSM reject StartAutomationExecution with
    'Undefined execution inputs'") and a public project's troubleshooting notes quoting the
    full message. APPROXIMATED: how several names are listed (here sorted, ", "-separated).
  - a required parameter (no default) that is not given:
        Missing required parameter: NAME in user inputs.
    CONFIRMED: CloudTrail errorMessage of StartAutomationExecution in
    https://github.com/CrowdStrike/aws-ssm-distributor/issues/135 and AWS's own
    https://github.com/aws-solutions/automated-security-response-on-aws/blob/d5eee581d13e0241fc40b46c447949db841d8ff7/source/lambdas/mcp-instructions/generation-instructions.md
    An empty list for a required parameter counts as not given (APPROXIMATED).
  - a value outside the declared allowedValues:
        Parameter "NAME" has value "VALUE" not found in [A, B].
    CONFIRMED: errorCode InvalidAutomationExecutionParametersException, errorMessage
    'Parameter "Action" has value "install" not found in [Install, Uninstall].' in
    https://github.com/CrowdStrike/aws-ssm-distributor/issues/100
  - APPROXIMATED (no AWS message found; worded in the same style):
        Parameter "NAME" has value "VALUE" that does not match the allowed pattern PATTERN.
        Parameter "NAME" of type Boolean has value "VALUE" that is not true or false.
        Parameter "NAME" of type Integer has value "VALUE" that is not an integer.
        Parameter "NAME" of type String takes one value, got N.

How the checks read the facts (each an assumption where the reference marks it unconfirmed):
allowedPattern is searched for in the value (re.search: most patterns are anchored; whether
SSM demands a whole-value match is unconfirmed), with ASCII classes (\\d, \\w) as in Java; for
a StringList it applies to each element. Patterns are written for Java, so `\\w-` inside a
class (a literal '-' in Java, an error in Python) is read as `\\w\\-`. The regexes of the
AWS::IAM::Role::Arn, AWS::S3::Bucket::Name and AWS::EC2::Instance::Id types are not enforced
(whether the API enforces them is unconfirmed). Boolean values are true/false in any case.

Effects (`EFFECTS`): for the documents listed there, an execution changes the emulated
resources the way the document's steps would, by calling this same server through boto3 as
the caller (same access key and region, hence the same moto account and region). Each effect
reads what it needs, fails like the document fails where that matters (a missing resource, a
default security group given to the security-group deleter, a volume in use), and returns what
it changed; that text is the execution's `Outputs["RedressLocal.Effect"]`. A document without
an entry still validates its parameters and then ends Success with the output
"effect not emulated: ..." and changes nothing. The catalog's `emulated` flags are built from
this table (build_catalog.py parses it), and `load_catalog` fails loudly if they disagree.

Not emulated: prefix-list rules of the security-group documents, the step-level records,
outputs AWS documents return (only RedressLocal.Effect), cross-Region behaviour, and anything
an effect's docstring says it leaves out. The RDS documents find their instance by
DbiResourceId, which moto gives every instance alike: they work only in an account and Region
holding one DB instance (otherwise the execution fails and says so).
"""

from __future__ import annotations

import json
import random
import re
import string
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

import identity

CATALOG_PATH = Path(__file__).resolve().parents[1] / "runbooks" / "catalog.json"
EFFECT_OUTPUT = "RedressLocal.Effect"
NOT_EMULATED = (
    "effect not emulated: the local stack checked this execution's parameters against the "
    "runbook catalog but does not emulate what {document} changes; nothing changed"
)


class RunbookFailure(Exception):
    """A runbook step failed; the message becomes the execution's FailureMessage."""


class InvalidParameters(Exception):
    """StartAutomationExecution's InvalidAutomationExecutionParametersException; the message
    is AWS's wording (see the module docstring for which wordings are confirmed)."""


# --- Who calls ---------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """Who signed a request: an execution's effects run as the same identity."""

    access_key: str
    region: str
    endpoint: str

    @property
    def account(self) -> str:
        """The account the request acts in, as moto decides it from the access key
        (temporary credentials from AssumeRole act in the role's account)."""
        return identity.account_of(self.access_key)

    def client(self, service: str):
        # A session of its own: boto3's shared default session is not thread-safe.
        client = boto3.session.Session().client(
            service,
            endpoint_url=self.endpoint,
            region_name=self.region,
            # moto never checks signatures; the access key picks the account.
            aws_access_key_id=self.access_key,
            aws_secret_access_key="redress-local",
            config=Config(retries={"max_attempts": 1}),
        )
        if service == "s3control":
            # S3 Control puts the account id in front of the host (ACCOUNT.host), which does
            # not resolve on loopback; moto routes by path, so send it to the host itself.
            client.meta.events.register("before-sign.s3-control.*", _strip_account_host)
        return client


def _strip_account_host(request, **_) -> None:
    request.url = re.sub(r"^(https?://)\d{12}\.", r"\1", request.url)


# --- The catalog -------------------------------------------------------------------


def _python_pattern(pattern: str) -> str:
    # Java reads `[\w-/]` as \w, '-' and '/'; Python rejects the range. Outside a class
    # `\w\-` means the same as `\w-`, so escaping everywhere is safe.
    return re.sub(r"(\\[wdsWDS])-", r"\1\\-", pattern)


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    required: bool
    default: str | None
    allowed: tuple[str, ...] | None
    pattern: str | None
    regex: re.Pattern | None

    @classmethod
    def from_catalog(cls, entry: dict) -> "Parameter":
        pattern = entry["pattern"]
        regex = re.compile(_python_pattern(pattern), re.ASCII) if pattern else None
        allowed = entry["allowed"]
        return cls(
            name=entry["name"],
            type=entry["type"],
            required=entry["required"],
            default=entry["default"],
            allowed=tuple(allowed) if allowed is not None else None,
            pattern=pattern,
            regex=regex,
        )


@dataclass(frozen=True)
class Document:
    name: str
    parameters: dict[str, Parameter]  # in the document's order
    emulated: bool
    test_only: bool


def load_catalog(path: Path = CATALOG_PATH) -> dict[str, Document]:
    """The catalog's documents by name. Fails when the catalog's `emulated` flags disagree
    with EFFECTS (run infra/runbooks/build_catalog.py)."""
    data = json.loads(path.read_text())
    documents = {}
    for entry in data["documents"]:
        parameters = {p["name"]: Parameter.from_catalog(p) for p in entry["parameters"]}
        documents[entry["name"]] = Document(
            entry["name"], parameters, entry["emulated"], entry["test_only"]
        )
    flagged = {name for name, doc in documents.items() if doc.emulated}
    if flagged != set(EFFECTS):
        raise RuntimeError(
            f"{path} is stale: its emulated documents differ from runbooks.EFFECTS "
            f"(only in catalog: {sorted(flagged - set(EFFECTS))}, only in EFFECTS: "
            f"{sorted(set(EFFECTS) - flagged)}); run infra/runbooks/build_catalog.py"
        )
    return documents


# --- Parameter checks --------------------------------------------------------------

SINGLE_VALUED = {"String", "Boolean", "Integer"}


def _check_value(spec: Parameter, value: str) -> str | None:
    """What is wrong with one value, in AWS's style; None when it is acceptable."""
    if spec.type == "Boolean":
        if value.lower() not in ("true", "false"):
            return f'Parameter "{spec.name}" of type Boolean has value "{value}" that is not true or false.'
    elif spec.type == "Integer":
        if not re.fullmatch(r"-?[0-9]+", value):
            return f'Parameter "{spec.name}" of type Integer has value "{value}" that is not an integer.'
    if spec.allowed is not None:
        if spec.type == "Boolean":
            found = value.lower() in (a.lower() for a in spec.allowed)
        elif spec.type == "Integer":
            found = int(value) in (int(a) for a in spec.allowed)
        else:
            found = value in spec.allowed
        if not found:
            return (
                f'Parameter "{spec.name}" has value "{value}" not found in '
                f"[{', '.join(spec.allowed)}]."
            )
    if spec.regex is not None and not spec.regex.search(value):
        return (
            f'Parameter "{spec.name}" has value "{value}" that does not match the allowed '
            f"pattern {spec.pattern}."
        )
    return None


def resolve_parameters(document: Document, given: dict[str, list[str]]) -> dict[str, list[str]]:
    """Checks a StartAutomationExecution request's parameters against the document and fills
    in the defaults. Raises InvalidParameters with AWS's message for the first problem."""
    undefined = sorted(set(given) - set(document.parameters))
    if undefined:
        raise InvalidParameters(f"Undefined execution inputs: [{', '.join(undefined)}]")
    for spec in document.parameters.values():
        if spec.required and not given.get(spec.name):
            raise InvalidParameters(f"Missing required parameter: {spec.name} in user inputs.")
    resolved: dict[str, list[str]] = {}
    for spec in document.parameters.values():
        values = given.get(spec.name)
        if values is None:
            resolved[spec.name] = [spec.default] if spec.default is not None else []
            continue
        if spec.type in SINGLE_VALUED or spec.type.startswith("AWS::"):
            if len(values) != 1:
                raise InvalidParameters(
                    f'Parameter "{spec.name}" of type {spec.type} takes one value, got {len(values)}.'
                )
        for value in values:
            problem = _check_value(spec, value)
            if problem:
                raise InvalidParameters(problem)
        resolved[spec.name] = list(values)
    return resolved


# --- Effects -----------------------------------------------------------------------

Params = dict[str, list[str]]
Effect = Callable[[Caller, Params], str]


def _one(params: Params, name: str) -> str:
    values = params.get(name) or [""]
    return values[0]


def _flag(params: Params, name: str) -> bool:
    return _one(params, name).lower() == "true"


def _code(err: ClientError) -> str:
    return err.response.get("Error", {}).get("Code", "")


def _failure(err: ClientError, doing: str) -> RunbookFailure:
    error = err.response.get("Error", {})
    return RunbookFailure(f"{doing} failed: {error.get('Code')}: {error.get('Message')}")


def _call(doing: str, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except ClientError as err:
        raise _failure(err, doing) from err


def _security_group(ec2, group_id: str) -> dict:
    try:
        return ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    except ClientError as err:
        if _code(err) == "InvalidGroup.NotFound":
            raise RunbookFailure(
                f"security group {group_id} does not exist (InvalidGroup.NotFound)"
            ) from err
        raise _failure(err, f"DescribeSecurityGroups on {group_id}") from err


def _world_open(perm: dict) -> tuple[list[dict], list[dict]]:
    """The permission's 0.0.0.0/0 and ::/0 ranges."""
    v4 = [{"CidrIp": r["CidrIp"]} for r in perm.get("IpRanges", []) if r.get("CidrIp") == "0.0.0.0/0"]
    v6 = [{"CidrIpv6": r["CidrIpv6"]} for r in perm.get("Ipv6Ranges", []) if r.get("CidrIpv6") == "::/0"]
    return v4, v6


def _ports(perm: dict) -> dict:
    ports = {"IpProtocol": perm["IpProtocol"]}
    for key in ("FromPort", "ToPort"):
        if perm.get(key) is not None:
            ports[key] = perm[key]
    return ports


def _revoke(ec2, group_id: str, permissions: list[dict], egress: bool = False) -> None:
    if not permissions:
        return
    if egress:
        _call(f"RevokeSecurityGroupEgress on {group_id}", ec2.revoke_security_group_egress,
              GroupId=group_id, IpPermissions=permissions)
    else:
        _call(f"RevokeSecurityGroupIngress on {group_id}", ec2.revoke_security_group_ingress,
              GroupId=group_id, IpPermissions=permissions)


ADMIN_PORTS = (22, 3389)  # SSH and RDP, the ports AWS-DisablePublicAccessForSecurityGroup closes


def disable_public_access_for_security_group(caller: Caller, params: Params) -> str:
    """Revokes exactly the single-port SSH/RDP rules from 0.0.0.0/0 (and IpAddressToBlock)
    and ::/0; other ports, wider port ranges and other sources stay. The real runbook fails
    with InvalidPermission.NotFound on some groups outside the default VPC that lack one of
    the patterns it revokes; this one does not."""
    group_id = _one(params, "GroupId")
    ec2 = caller.client("ec2")
    group = _security_group(ec2, group_id)
    ipv4_sources = {"0.0.0.0/0"}
    if _one(params, "IpAddressToBlock"):
        ipv4_sources.add(_one(params, "IpAddressToBlock"))
    to_revoke = []
    for perm in group.get("IpPermissions", []):
        if perm.get("IpProtocol") != "tcp" or perm.get("FromPort") not in ADMIN_PORTS:
            continue
        if perm.get("ToPort") != perm.get("FromPort"):
            continue
        ports = {"IpProtocol": "tcp", "FromPort": perm["FromPort"], "ToPort": perm["ToPort"]}
        for ip_range in perm.get("IpRanges", []):
            if ip_range.get("CidrIp") in ipv4_sources:
                to_revoke.append({**ports, "IpRanges": [{"CidrIp": ip_range["CidrIp"]}]})
        for ip_range in perm.get("Ipv6Ranges", []):
            if ip_range.get("CidrIpv6") == "::/0":
                to_revoke.append({**ports, "Ipv6Ranges": [{"CidrIpv6": "::/0"}]})
    _revoke(ec2, group_id, to_revoke)
    return f"revoked {len(to_revoke)} world-open SSH/RDP permission(s) of {group_id}"


def disable_incoming_ssh_on_port_22(caller: Caller, params: Params) -> str:
    """For each group: revokes the 0.0.0.0/0 and ::/0 ranges of rules whose FromPort and
    ToPort are both 22 (as the document's script does; wider ranges stay)."""
    ec2 = caller.client("ec2")
    restricted = []
    for group_id in params["SecurityGroupIds"]:
        group = _security_group(ec2, group_id)
        v4_all, v6_all = [], []
        for perm in group.get("IpPermissions", []):
            if perm.get("FromPort") == 22 and perm.get("ToPort") == 22:
                v4, v6 = _world_open(perm)
                v4_all += v4
                v6_all += v6
        if v4_all or v6_all:
            permission = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22}
            if v4_all:
                permission["IpRanges"] = v4_all
            if v6_all:
                permission["Ipv6Ranges"] = v6_all
            _revoke(ec2, group_id, [permission])
            restricted.append(group_id)
    return f"revoked world-open port-22 ingress of {restricted or 'no group'}"


def remove_unrestricted_source_ingress_rules(caller: Caller, params: Params) -> str:
    """Revokes every ingress permission from 0.0.0.0/0 or ::/0, whatever its ports."""
    group_id = _one(params, "SecurityGroupId")
    ec2 = caller.client("ec2")
    group = _security_group(ec2, group_id)
    to_revoke = []
    for perm in group.get("IpPermissions", []):
        v4, v6 = _world_open(perm)
        if v4:
            to_revoke.append({**_ports(perm), "IpRanges": v4})
        if v6:
            to_revoke.append({**_ports(perm), "Ipv6Ranges": v6})
    _revoke(ec2, group_id, to_revoke)
    return f"revoked {len(to_revoke)} world-open ingress permission(s) of {group_id}"


def _strip(perm: dict) -> dict:
    keep = ("IpProtocol", "FromPort", "ToPort", "IpRanges", "Ipv6Ranges", "PrefixListIds")
    out = {k: v for k, v in perm.items() if k in keep and v not in (None, [])}
    pairs = [{"GroupId": p["GroupId"]} for p in perm.get("UserIdGroupPairs", []) if p.get("GroupId")]
    if pairs:
        out["UserIdGroupPairs"] = pairs
    return out


def remove_vpc_default_security_group_rules(caller: Caller, params: Params) -> str:
    """Fails for a group not named `default` (the document asserts the name); otherwise
    revokes all its ingress and egress permissions."""
    group_id = _one(params, "GroupId")
    ec2 = caller.client("ec2")
    group = _security_group(ec2, group_id)
    if group.get("GroupName") != "default":
        raise RunbookFailure(
            f"security group {group_id} is not a default security group "
            f"(its name is {group.get('GroupName')!r})"
        )
    ingress = [_strip(p) for p in group.get("IpPermissions", [])]
    egress = [_strip(p) for p in group.get("IpPermissionsEgress", [])]
    _revoke(ec2, group_id, ingress)
    _revoke(ec2, group_id, egress, egress=True)
    return f"revoked {len(ingress)} ingress and {len(egress)} egress permission(s) of {group_id}"


def delete_unused_security_group(caller: Caller, params: Params) -> str:
    """Deletes a non-default group; a group named `default` is left alone (the document
    branches to its end). A group in use fails as DeleteSecurityGroup does."""
    group_id = _one(params, "GroupId")
    ec2 = caller.client("ec2")
    group = _security_group(ec2, group_id)
    if group.get("GroupName") == "default":
        return f"{group_id} is a default security group: not deleted"
    _call(f"DeleteSecurityGroup on {group_id}", ec2.delete_security_group, GroupId=group_id)
    return f"deleted security group {group_id}"


def _bucket_call(doing: str, bucket: str, fn, **kwargs):
    try:
        return fn(Bucket=bucket, **kwargs)
    except ClientError as err:
        if _code(err) == "NoSuchBucket":
            raise RunbookFailure(f"bucket {bucket} does not exist (NoSuchBucket)") from err
        raise _failure(err, f"{doing} on {bucket}") from err


def enable_s3_bucket_encryption(caller: Caller, params: Params) -> str:
    bucket = _one(params, "BucketName")
    algorithm = _one(params, "SSEAlgorithm")
    _bucket_call(
        "PutBucketEncryption", bucket, caller.client("s3").put_bucket_encryption,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": algorithm}}]
        },
    )
    return f"default encryption of {bucket} set to {algorithm}"


def _block_public_access(params: Params, everything: bool) -> dict:
    names = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
    return {name: True if everything else _flag(params, name) for name in names}


def disable_s3_bucket_public_read_write(caller: Caller, params: Params) -> str:
    bucket = _one(params, "S3BucketName")
    _bucket_call(
        "PutPublicAccessBlock", bucket, caller.client("s3").put_public_access_block,
        PublicAccessBlockConfiguration=_block_public_access(params, everything=True),
    )
    return f"all four Block Public Access settings of {bucket} turned on"


def configure_s3_bucket_public_access_block(caller: Caller, params: Params) -> str:
    bucket = _one(params, "BucketName")
    settings = _block_public_access(params, everything=False)
    _bucket_call(
        "PutPublicAccessBlock", bucket, caller.client("s3").put_public_access_block,
        PublicAccessBlockConfiguration=settings,
    )
    return f"Block Public Access of {bucket} set to {settings}"


def configure_s3_public_access_block(caller: Caller, params: Params) -> str:
    """Account-level (S3 Control); StabilizationPeriod-style waiting is not emulated."""
    account = _one(params, "AccountId")
    settings = _block_public_access(params, everything=False)
    _call(
        f"s3control PutPublicAccessBlock on {account}",
        caller.client("s3control").put_public_access_block,
        AccountId=account, PublicAccessBlockConfiguration=settings,
    )
    return f"account {account} Block Public Access set to {settings}"


def restrict_bucket_ssl_requests_only(caller: Caller, params: Params) -> str:
    """Appends the document's deny-without-TLS statement (Sid AllowSSLRequestsOnly_xxxxxx)
    to the bucket policy, or creates a policy holding only it."""
    bucket = _one(params, "BucketName")
    s3 = caller.client("s3")
    try:
        policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    except ClientError as err:
        if _code(err) == "NoSuchBucketPolicy":
            policy = None
        elif _code(err) == "NoSuchBucket":
            raise RunbookFailure(f"bucket {bucket} does not exist (NoSuchBucket)") from err
        else:
            raise _failure(err, f"GetBucketPolicy on {bucket}") from err
    suffix = "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(6))
    statement = {
        "Sid": f"AllowSSLRequestsOnly_{suffix}",
        "Action": "s3:*",
        "Effect": "Deny",
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        "Principal": "*",
    }
    if policy:
        policy["Statement"].append(statement)
    else:
        policy = {"Version": "2012-10-17", "Statement": [statement]}
    _bucket_call("PutBucketPolicy", bucket, s3.put_bucket_policy, Policy=json.dumps(policy))
    return f"bucket policy of {bucket} now denies requests without TLS ({statement['Sid']})"


def configure_s3_bucket_versioning(caller: Caller, params: Params) -> str:
    bucket = _one(params, "BucketName")
    state = _one(params, "VersioningState")
    _bucket_call(
        "PutBucketVersioning", bucket, caller.client("s3").put_bucket_versioning,
        VersioningConfiguration={"Status": state},
    )
    return f"versioning of {bucket} set to {state}"


def configure_s3_bucket_logging(caller: Caller, params: Params) -> str:
    """Grants only when GrantedPermission and GranteeType are both given. Like S3, fails
    when the target bucket does not let the log delivery group write."""
    bucket = _one(params, "BucketName")
    enabled = {"TargetBucket": _one(params, "TargetBucket"), "TargetPrefix": _one(params, "TargetPrefix")}
    permission, grantee_type = _one(params, "GrantedPermission"), _one(params, "GranteeType")
    if permission and grantee_type:
        grantee = {"Type": grantee_type}
        for field, name in (("ID", "GranteeId"), ("EmailAddress", "GranteeEmailAddress"), ("URI", "GranteeUri")):
            if _one(params, name):
                grantee[field] = _one(params, name)
        enabled["TargetGrants"] = [{"Grantee": grantee, "Permission": permission}]
    key_format = _one(params, "TargetObjectKeyPrefix")
    if key_format == "Simple":
        enabled["TargetObjectKeyFormat"] = {"SimplePrefix": {}}
    elif key_format == "Partitioned":
        source = _one(params, "TargetObjectKeyPartitionDateSource") or "EventTime"
        enabled["TargetObjectKeyFormat"] = {"PartitionedPrefix": {"PartitionDateSource": source}}
    _bucket_call(
        "PutBucketLogging", bucket, caller.client("s3").put_bucket_logging,
        BucketLoggingStatus={"LoggingEnabled": enabled},
    )
    return f"access logging of {bucket} goes to {enabled['TargetBucket']}/{enabled['TargetPrefix']}"


def _update_trail(caller: Caller, name: str, **settings) -> None:
    try:
        caller.client("cloudtrail").update_trail(Name=name, **settings)
    except ClientError as err:
        if _code(err) == "TrailNotFoundException":
            raise RunbookFailure(f"trail {name} does not exist (TrailNotFoundException)") from err
        raise _failure(err, f"UpdateTrail on {name}") from err


def enable_cloudtrail_log_file_validation(caller: Caller, params: Params) -> str:
    trail = _one(params, "TrailName")
    _update_trail(caller, trail, EnableLogFileValidation=True)
    return f"log file validation of trail {trail} turned on"


def enable_cloudtrail_log_file_validation_aws(caller: Caller, params: Params) -> str:
    for trail in params["TrailNames"]:
        _update_trail(caller, trail, EnableLogFileValidation=True)
    return f"log file validation turned on for {params['TrailNames']}"


def enable_cloudtrail(caller: Caller, params: Params) -> str:
    """CreateTrail only, as the document (it does not start logging)."""
    name, bucket = _one(params, "TrailName"), _one(params, "S3BucketName")
    _call(f"CreateTrail {name}", caller.client("cloudtrail").create_trail, Name=name, S3BucketName=bucket)
    return f"trail {name} created, delivering to {bucket} (not logging yet)"


def enable_key_rotation(caller: Caller, params: Params) -> str:
    key = _one(params, "KeyId")
    kms = caller.client("kms")
    _call(f"EnableKeyRotation on {key}", kms.enable_key_rotation, KeyId=key)
    if not kms.get_key_rotation_status(KeyId=key)["KeyRotationEnabled"]:
        raise RunbookFailure(f"key rotation of {key} is still off after EnableKeyRotation")
    return f"automatic rotation of key {key} turned on"


def cancel_key_deletion(caller: Caller, params: Params) -> str:
    """CancelKeyDeletion leaves the key Disabled, as in AWS; the document does not enable it."""
    key = _one(params, "KeyId")
    kms = caller.client("kms")
    _call(f"CancelKeyDeletion on {key}", kms.cancel_key_deletion, KeyId=key)
    state = kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"]
    return f"scheduled deletion of key {key} cancelled (key state {state})"


def set_iam_password_policy(caller: Caller, params: Params) -> str:
    """MaxPasswordAge and PasswordReusePrevention of 0 mean "not set" and are left out, as
    IAM accepts only 1-1095 and 1-24."""
    policy = {
        "MinimumPasswordLength": int(_one(params, "MinimumPasswordLength")),
        "RequireSymbols": _flag(params, "RequireSymbols"),
        "RequireNumbers": _flag(params, "RequireNumbers"),
        "RequireUppercaseCharacters": _flag(params, "RequireUppercaseCharacters"),
        "RequireLowercaseCharacters": _flag(params, "RequireLowercaseCharacters"),
        "AllowUsersToChangePassword": _flag(params, "AllowUsersToChangePassword"),
        "HardExpiry": _flag(params, "HardExpiry"),
    }
    for name in ("MaxPasswordAge", "PasswordReusePrevention"):
        if int(_one(params, name)) > 0:
            policy[name] = int(_one(params, name))
    _call("UpdateAccountPasswordPolicy", caller.client("iam").update_account_password_policy, **policy)
    return f"account password policy set: {policy}"


def enable_ebs_encryption_by_default(caller: Caller, params: Params) -> str:
    ec2 = caller.client("ec2")
    _call("EnableEbsEncryptionByDefault", ec2.enable_ebs_encryption_by_default)
    return f"EBS encryption by default turned on in {caller.region}"


def enforce_ec2_instance_imdsv2(caller: Caller, params: Params) -> str:
    """HttpTokens=required; a hop limit of 0 leaves the current one."""
    instance = _one(params, "InstanceId")
    options = {"InstanceId": instance, "HttpTokens": "required"}
    hop_limit = int(_one(params, "HttpPutResponseHopLimit") or "0")
    if hop_limit > 0:
        options["HttpPutResponseHopLimit"] = hop_limit
    _call(f"ModifyInstanceMetadataOptions on {instance}",
          caller.client("ec2").modify_instance_metadata_options, **options)
    return f"instance {instance} requires IMDSv2"


def delete_unused_ebs_volume(caller: Caller, params: Params) -> str:
    volume_id = _one(params, "VolumeId")
    ec2 = caller.client("ec2")
    volume = _call(f"DescribeVolumes {volume_id}", ec2.describe_volumes, VolumeIds=[volume_id])["Volumes"][0]
    if volume.get("State") != "available":
        raise RunbookFailure(f"volume {volume_id} is {volume.get('State')}, not available: not deleted")
    snapshot = None
    if _flag(params, "CreateSnapshot"):
        snapshot = _call(f"CreateSnapshot of {volume_id}", ec2.create_snapshot, VolumeId=volume_id)["SnapshotId"]
    _call(f"DeleteVolume {volume_id}", ec2.delete_volume, VolumeId=volume_id)
    return f"volume {volume_id} deleted" + (f" after snapshot {snapshot}" if snapshot else "")


def release_elastic_ip(caller: Caller, params: Params) -> str:
    allocation = _one(params, "AllocationId")
    _call(f"ReleaseAddress {allocation}", caller.client("ec2").release_address, AllocationId=allocation)
    return f"address {allocation} released"


def enable_pitr_for_dynamodb_table(caller: Caller, params: Params) -> str:
    table = _one(params, "TableName")
    _call(f"UpdateContinuousBackups on {table}", caller.client("dynamodb").update_continuous_backups,
          TableName=table, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    return f"point-in-time recovery of table {table} turned on"


def encrypt_sns_topic(caller: Caller, params: Params) -> str:
    topic, key = _one(params, "TopicArn"), _one(params, "KmsKeyArn")
    _call(f"SetTopicAttributes on {topic}", caller.client("sns").set_topic_attributes,
          TopicArn=topic, AttributeName="KmsMasterKeyId", AttributeValue=key)
    return f"topic {topic} encrypted with {key}"


def _db_instance(rds, resource_id: str) -> str:
    """The DB instance identifier of a DbiResourceId (what Config reports for the instance).

    moto gives every DB instance the same DbiResourceId, so the instance is found only when
    it is the only one in the account and Region; otherwise the step fails and says why
    (never a guess that would change another instance)."""
    found = _call(
        f"DescribeDBInstances dbi-resource-id={resource_id}", rds.describe_db_instances,
        Filters=[{"Name": "dbi-resource-id", "Values": [resource_id]}],
    )["DBInstances"]
    if not found:
        raise RunbookFailure(f"no DB instance has resource id {resource_id}")
    if len(found) > 1:
        names = sorted(i["DBInstanceIdentifier"] for i in found)
        raise RunbookFailure(
            f"{len(found)} DB instances have resource id {resource_id} ({names}): the local "
            "emulator gives every instance the same DbiResourceId, so the local stack emulates "
            "the RDS documents only for an account and Region holding one DB instance"
        )
    return found[0]["DBInstanceIdentifier"]


def _modify_db_instance(caller: Caller, resource_id: str, **changes) -> str:
    rds = caller.client("rds")
    identifier = _db_instance(rds, resource_id)
    _call(f"ModifyDBInstance {identifier}", rds.modify_db_instance,
          DBInstanceIdentifier=identifier, **changes)
    return identifier


def disable_public_access_to_rds_instance(caller: Caller, params: Params) -> str:
    identifier = _modify_db_instance(caller, _one(params, "DbiResourceId"),
                                     PubliclyAccessible=False, ApplyImmediately=True)
    return f"DB instance {identifier} is no longer publicly accessible"


def enable_rds_instance_deletion_protection(caller: Caller, params: Params) -> str:
    identifier = _modify_db_instance(caller, _one(params, "DbInstanceResourceId"),
                                     DeletionProtection=True,
                                     ApplyImmediately=_flag(params, "ApplyImmediately"))
    return f"deletion protection of DB instance {identifier} turned on"


def enable_minor_version_upgrade_on_rds_instance(caller: Caller, params: Params) -> str:
    identifier = _modify_db_instance(caller, _one(params, "DbiResourceId"),
                                     AutoMinorVersionUpgrade=True, ApplyImmediately=True)
    return f"automatic minor version upgrade of DB instance {identifier} turned on"


def always_fail(caller: Caller, params: Params) -> str:
    raise RunbookFailure("step failed on purpose (test runbook)")


def sleep(caller: Caller, params: Params) -> str:
    time.sleep(int(_one(params, "Seconds")))
    return "slept; nothing changed (test runbook)"


EFFECTS: dict[str, Effect] = {
    "AWS-DisablePublicAccessForSecurityGroup": disable_public_access_for_security_group,
    "AWS-DisableIncomingSSHOnPort22": disable_incoming_ssh_on_port_22,
    "AWSConfigRemediation-RemoveUnrestrictedSourceIngressRules": remove_unrestricted_source_ingress_rules,
    "AWSConfigRemediation-RemoveVPCDefaultSecurityGroupRules": remove_vpc_default_security_group_rules,
    "AWSConfigRemediation-DeleteUnusedSecurityGroup": delete_unused_security_group,
    "AWS-EnableS3BucketEncryption": enable_s3_bucket_encryption,
    "AWS-DisableS3BucketPublicReadWrite": disable_s3_bucket_public_read_write,
    "AWSConfigRemediation-ConfigureS3BucketPublicAccessBlock": configure_s3_bucket_public_access_block,
    "AWSConfigRemediation-ConfigureS3PublicAccessBlock": configure_s3_public_access_block,
    "AWSConfigRemediation-RestrictBucketSSLRequestsOnly": restrict_bucket_ssl_requests_only,
    "AWS-ConfigureS3BucketVersioning": configure_s3_bucket_versioning,
    "AWS-ConfigureS3BucketLogging": configure_s3_bucket_logging,
    "AWSConfigRemediation-EnableCloudTrailLogFileValidation": enable_cloudtrail_log_file_validation,
    "AWS-EnableCloudTrailLogFileValidation": enable_cloudtrail_log_file_validation_aws,
    "AWS-EnableCloudTrail": enable_cloudtrail,
    "AWSConfigRemediation-EnableKeyRotation": enable_key_rotation,
    "AWSConfigRemediation-CancelKeyDeletion": cancel_key_deletion,
    "AWSConfigRemediation-SetIAMPasswordPolicy": set_iam_password_policy,
    "AWSConfigRemediation-EnableEbsEncryptionByDefault": enable_ebs_encryption_by_default,
    "AWSConfigRemediation-EnforceEC2InstanceIMDSv2": enforce_ec2_instance_imdsv2,
    "AWSConfigRemediation-DeleteUnusedEBSVolume": delete_unused_ebs_volume,
    "AWS-ReleaseElasticIP": release_elastic_ip,
    "AWSConfigRemediation-EnablePITRForDynamoDbTable": enable_pitr_for_dynamodb_table,
    "AWSConfigRemediation-EncryptSNSTopic": encrypt_sns_topic,
    "AWSConfigRemediation-DisablePublicAccessToRDSInstance": disable_public_access_to_rds_instance,
    "AWSConfigRemediation-EnableRDSInstanceDeletionProtection": enable_rds_instance_deletion_protection,
    "AWSConfigRemediation-EnableMinorVersionUpgradeOnRDSDBInstance": enable_minor_version_upgrade_on_rds_instance,
    # Test-only documents (no such documents exist in AWS).
    "Redress-Test-AlwaysFail": always_fail,
    "Redress-Test-Sleep": sleep,
}


def run(document: Document, caller: Caller, params: Params) -> dict[str, list[str]]:
    """Applies the document's effect; returns the execution's Outputs. Raises RunbookFailure
    (or a boto error) when a step fails."""
    effect = EFFECTS.get(document.name)
    if effect is None:
        return {EFFECT_OUTPUT: [NOT_EMULATED.format(document=document.name)]}
    return {EFFECT_OUTPUT: [effect(caller, params)]}
