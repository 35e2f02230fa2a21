//! The policy's exemption tag (`[exemptions] tag`, off unless set) on EC2 resources:
//! the owner's way to keep redress away from a resource without editing the policy.
//! Whoever can set the tag can switch redress off for a resource, so the policy must
//! name it and an SCP should reserve it (`infra/scp/`).

/// The tag value that exempts (compared without case).
pub const EXEMPT_VALUE: &str = "true";

/// Whether these (key, value) tags include `key=true` (value without case).
pub fn exempt<'a>(mut tags: impl Iterator<Item = (&'a str, &'a str)>, key: &str) -> bool {
    tags.any(|(k, v)| k == key && v.eq_ignore_ascii_case(EXEMPT_VALUE))
}

/// Whether the tag applies to this resource type (EC2 resources carry tags EC2 can read).
pub fn taggable(resource_type: &str) -> bool {
    resource_type.starts_with("AWS::EC2::")
}
