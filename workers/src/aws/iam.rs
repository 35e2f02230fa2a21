//! IAM: the unique id behind a user or role name, for resolving the policy's approvers.

use redress::approver::PrincipalKind;

use super::AwsError;

/// IAM, through its (global) endpoint.
#[derive(Clone, Debug)]
pub struct Iam {
    client: aws_sdk_iam::Client,
}

impl Iam {
    /// An IAM client from the shared configuration.
    pub fn new(config: &aws_config::SdkConfig) -> Iam {
        Iam {
            client: aws_sdk_iam::Client::new(config),
        }
    }
}

/// (ARN, unique id) of the user or role, or `None` if IAM has no such principal.
pub async fn lookup(
    iam: &Iam,
    kind: PrincipalKind,
    name: &str,
) -> Result<Option<(String, String)>, AwsError> {
    let found = match kind {
        PrincipalKind::User => iam
            .client
            .get_user()
            .user_name(name)
            .send()
            .await
            .map(|o| o.user.map(|u| (u.arn, u.user_id)))
            .map_err(|e| AwsError::from_sdk("iam:GetUser", e)),
        PrincipalKind::Role => iam
            .client
            .get_role()
            .role_name(name)
            .send()
            .await
            .map(|o| o.role.map(|r| (r.arn, r.role_id)))
            .map_err(|e| AwsError::from_sdk("iam:GetRole", e)),
    };
    match found {
        Ok(v) => Ok(v),
        Err(e) if e.code == "NoSuchEntity" => Ok(None),
        Err(e) => Err(e),
    }
}
