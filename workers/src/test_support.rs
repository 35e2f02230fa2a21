//! Test fixtures shared by the workers' unit tests.

use redress::message::Finding;

/// A NON_COMPLIANT finding of `restricted-ssh` on a security group of 123456789012 in
/// us-east-1, evaluated at `evaluation_time` (RFC 3339).
pub fn ssh_finding(evaluation_time: &str) -> Finding {
    Finding {
        event_id: "e-1".into(),
        config_rule_name: "restricted-ssh".into(),
        config_rule_arn: None,
        resource_id: "sg-0123456789abcdef0".into(),
        resource_type: "AWS::EC2::SecurityGroup".into(),
        account_id: "123456789012".into(),
        region: "us-east-1".into(),
        compliance: "NON_COMPLIANT".into(),
        annotation: None,
        evaluation_time: Some(evaluation_time.into()),
    }
}
