//! Findings in other accounts and regions: the executor assumes the policy's member role
//! in the finding's account and acts in the finding's region; a role it cannot assume is
//! a permanent, clearly reported failure.

use std::process::Command;

use aws_sdk_sqs::config::Credentials;

use crate::support::{
    credentials_in, executions, ingress_with, policy_fixture, root, sdk_config_with,
    security_group_with, text, EventBuilder, World, ACCOUNT, REGION,
};

const SG: &str = "AWS::EC2::SecurityGroup";
const MEMBER: &str = "111111111111";

/// Automatic SSH fixes, acting through the member role of the finding's account.
fn policy() -> String {
    format!(
        "[accounts]\nrole = \"arn:aws:iam::{{account_id}}:role/redress-member\"\n{}",
        policy_fixture("ssh-low")
    )
}

/// Creates the member role redress assumes (IAM through boto3: the tests have no Rust
/// IAM client), idempotently.
fn create_member_role(c: &Credentials) {
    let out = Command::new(root().join(".venv/bin/python"))
        .args([
            "-c",
            r#"
import boto3, os
iam = boto3.client("iam", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")
try:
    iam.create_role(RoleName="redress-member", AssumeRolePolicyDocument="{}")
except iam.exceptions.EntityAlreadyExistsException:
    pass
"#,
        ])
        .env("AWS_ENDPOINT_URL", crate::support::endpoint())
        .env("AWS_ACCESS_KEY_ID", c.access_key_id())
        .env("AWS_SECRET_ACCESS_KEY", c.secret_access_key())
        .env("AWS_SESSION_TOKEN", c.session_token().unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[tokio::test]
async fn findings_in_a_member_account_and_another_region_are_fixed_there() {
    let w = World::new("accounts", &policy()).await;
    // Credentials in the member account, from the role AWS Organizations puts there.
    let creds = credentials_in(MEMBER).await;
    create_member_role(&creds);
    let member_ec2 = aws_sdk_ec2::Client::new(&sdk_config_with(creds, REGION).await);
    let there = security_group_with(
        &member_ec2,
        &format!("{}-m", w.prefix),
        &[(22, "0.0.0.0/0")],
    )
    .await;
    let west = aws_sdk_ec2::Client::new(
        &sdk_config_with(
            Credentials::new("test", "test", None, None, "e2e"),
            "us-west-2",
        )
        .await,
    );
    let west_group =
        security_group_with(&west, &format!("{}-w", w.prefix), &[(22, "0.0.0.0/0")]).await;
    // An account without the member role.
    let unreachable = "sg-0123456789abcdef0";
    // Each finding held by Config in its own account and region.
    for (account, region, group) in [
        (MEMBER, REGION, there.as_str()),
        (ACCOUNT, "us-west-2", west_group.as_str()),
        ("222222222222", REGION, unreachable),
    ] {
        w.send_event(
            &EventBuilder::new("restricted-ssh", SG, group)
                .account(account)
                .region(region),
        )
        .await;
    }
    let records = w.run_once(&[]);

    assert!(
        ingress_with(&member_ec2, &there).await.is_empty(),
        "member group not fixed"
    );
    assert!(
        ingress_with(&west, &west_group).await.is_empty(),
        "us-west-2 group not fixed"
    );
    let done = executions(&records);
    let outcome = |id: &str| {
        done.iter()
            .find(|r| r["resource_id"] == id)
            .map(|r| (r["account"].clone(), r["outcome"].clone()))
    };
    assert_eq!(outcome(&there), Some((MEMBER.into(), "succeeded".into())));
    assert_eq!(
        outcome(&west_group),
        Some((ACCOUNT.into(), "succeeded".into()))
    );

    let dead = w.drain("tasks-dlq").await;
    assert_eq!(dead.len(), 1, "{records:#?}");
    let error = &dead[0].attributes["redress.error"];
    assert_eq!(dead[0].attributes["redress.error_class"], "permanent");
    assert!(
        error.contains("cannot assume arn:aws:iam::222222222222:role/redress-member")
            && error.contains("AccessDenied"),
        "{error}"
    );
}
