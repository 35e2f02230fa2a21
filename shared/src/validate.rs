//! Checks on identifiers that come from outside (events, tasks, the command line).
//!
//! Every value that may end up in an AWS call or a runbook parameter passes here, so a
//! crafted event cannot smuggle shell metacharacters, whitespace or control characters
//! into a remediation.

/// Longest resource id accepted (ARNs of some types run long).
const MAX_RESOURCE_ID: usize = 1024;

/// Accepts resource ids made of the characters AWS ids, names and ARNs use, with a
/// stricter shape for types redress acts on directly.
pub fn resource_id(resource_type: &str, id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("must not be empty".into());
    }
    if id.len() > MAX_RESOURCE_ID {
        return Err(format!("longer than {MAX_RESOURCE_ID} characters"));
    }
    if let Some(bad) = id.chars().find(|c| {
        !(c.is_ascii_alphanumeric()
            || matches!(c, '-' | '_' | '.' | '/' | ':' | '@' | '+' | '=' | ',' | '#'))
    }) {
        return Err(format!(
            "{id:?} contains {bad:?}, which no AWS resource id has"
        ));
    }
    if resource_type == "AWS::EC2::SecurityGroup" && !is_prefixed_hex(id, "sg-") {
        return Err(format!("{id:?} is not a security group id (sg-<hex>)"));
    }
    Ok(())
}

fn is_prefixed_hex(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix)
        .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Config's type for account-level findings (root MFA, CloudTrail enabled, ...).
pub const ACCOUNT_RESOURCE_TYPE: &str = "AWS::::Account";

/// `AWS::Service::Type`, or `AWS::::Account`.
pub fn resource_type(t: &str) -> Result<(), String> {
    if t == ACCOUNT_RESOURCE_TYPE {
        return Ok(());
    }
    let ok = split_exactly::<3>(t, "::").is_some_and(|parts| {
        parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()))
    });
    if ok {
        Ok(())
    } else {
        Err(format!("{t:?} is not of the form AWS::Service::Type"))
    }
}

/// Twelve digits.
pub fn account(a: &str) -> Result<(), String> {
    if a.len() == 12 && a.chars().all(|c| c.is_ascii_digit()) {
        Ok(())
    } else {
        Err(format!("{a:?} is not a 12-digit account id"))
    }
}

/// Lower-case words and a trailing number, e.g. `eu-west-1`, `us-gov-west-1`.
pub fn region(r: &str) -> Result<(), String> {
    let ok = r.rsplit_once('-').is_some_and(|(words, number)| {
        words.split('-').count() >= 2
            && words
                .split('-')
                .all(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase()))
            && !number.is_empty()
            && number.chars().all(|c| c.is_ascii_digit())
    });
    if ok {
        Ok(())
    } else {
        Err(format!("{r:?} is not a region name"))
    }
}

/// Config rule names: 1–128 of letters, digits, `-`, `_`.
pub fn rule_name(n: &str) -> Result<(), String> {
    let ok = !n.is_empty()
        && n.len() <= 128
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!("{n:?} is not a Config rule name"))
    }
}

/// A Config rule ARN of the finding's account and region:
/// `arn:PARTITION:config:REGION:ACCOUNT:config-rule/…` (organization and conformance-pack
/// rules carry a path, e.g. `config-rule/aws-service-rule/config-conforms.amazonaws.com/…`).
/// A rule evaluates resources of its own account and region, so an ARN naming others is
/// not one Config would send.
pub fn rule_arn(arn: &str, account_id: &str, region_name: &str) -> Result<(), String> {
    let parts = split_exactly::<6>(arn, ":").unwrap_or_default();
    let well_formed = arn.len() <= 512
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "config"
        && parts[5].starts_with("config-rule/")
        && parts[5].len() > "config-rule/".len()
        && arn.chars().all(|c| c.is_ascii_graphic());
    if !well_formed {
        return Err(format!("{arn:?} is not a Config rule ARN"));
    }
    if parts[3] != region_name || parts[4] != account_id {
        return Err(format!(
            "{arn:?} is a rule of {}/{}, not of the finding's {account_id}/{region_name}",
            parts[4], parts[3]
        ));
    }
    Ok(())
}

/// `s` cut at the first `N - 1` separators (the last part keeps any further ones), when
/// it has that many; no allocation, since every event passes here.
fn split_exactly<'a, const N: usize>(s: &'a str, sep: &str) -> Option<[&'a str; N]> {
    let mut it = s.splitn(N, sep);
    let mut parts = [""; N];
    for part in &mut parts {
        *part = it.next()?;
    }
    Some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_ids() {
        let sg = "AWS::EC2::SecurityGroup";
        assert!(resource_id(sg, "sg-0a1b2c3d4e5f60718").is_ok());
        assert!(resource_id(sg, "sg-1; rm -rf /").is_err());
        assert!(resource_id(sg, "vpc-123").is_err());
        assert!(resource_id("AWS::S3::Bucket", "audit-logs-prod-111122223333").is_ok());
        assert!(resource_id("AWS::SSM::Parameter", "/payments/current/db_pool_size").is_ok());
        assert!(resource_id("AWS::S3::Bucket", "a b").is_err());
        assert!(resource_id("AWS::S3::Bucket", "$(reboot)").is_err());
        assert!(resource_id("AWS::S3::Bucket", "").is_err());
        assert!(resource_id("AWS::S3::Bucket", &"a".repeat(2000)).is_err());
    }

    #[test]
    fn other_identifiers() {
        assert!(resource_type("AWS::EC2::SecurityGroup").is_ok());
        assert!(resource_type("AWS::EC2").is_err());
        assert!(resource_type("AWS::::Account").is_ok());
        assert!(resource_type("AWS::::Bucket").is_err());
        assert!(account("111122223333").is_ok());
        assert!(account("1111").is_err());
        assert!(region("eu-west-1").is_ok());
        assert!(region("us-gov-west-1").is_ok());
        assert!(region("eu-west").is_err());
        for bad in [
            "AWS::EC2::Security::Group",
            "AWS::EC2::",
            "::EC2::X",
            "AWS::EC2:X",
            "",
        ] {
            assert!(resource_type(bad).is_err(), "{bad}");
        }
        for bad in [
            "eu--1",
            "eu-west-",
            "-west-1",
            "eu-West-1",
            "euwest1",
            "eu-west-1a",
        ] {
            assert!(region(bad).is_err(), "{bad}");
        }
        assert!(region("cn-north-west-12").is_ok());
        assert!(rule_name("restricted-ssh").is_ok());
        assert!(rule_name("x y").is_err());
        let arn = "arn:aws:config:us-east-1:111122223333:config-rule/config-rule-ab12cd";
        assert!(rule_arn(arn, "111122223333", "us-east-1").is_ok());
        assert!(rule_arn(
            "arn:aws:config:us-east-1:111122223333:config-rule/aws-service-rule/config-conforms.amazonaws.com/config-rule-x",
            "111122223333",
            "us-east-1"
        )
        .is_ok());
        assert!(rule_arn(arn, "444455556666", "us-east-1").is_err());
        assert!(rule_arn("arn:aws:config:us-east-1:config-rule/x", "", "us-east-1").is_err());
        assert!(rule_arn(arn, "111122223333", "eu-west-1").is_err());
        assert!(rule_arn(
            "arn:aws:iam::111122223333:role/x",
            "111122223333",
            "us-east-1"
        )
        .is_err());
        assert!(rule_arn(
            "arn:aws:config:us-east-1:111122223333:config-rule/",
            "111122223333",
            "us-east-1"
        )
        .is_err());
    }
}
