//! `redress-sg-admin-ports` and `redress-sg-privileged-ports`: a security group breaks the
//! rule when an ingress permission open to the whole internet (`0.0.0.0/0`, `::/0`)
//! covers one of the rule's ports. The default port lists are the default policy's, so
//! what a rule flags is exactly what the policy's fix closes (80 and 443 are not flagged).

use serde_json::Value;

use super::{annotation, Evaluation};
use crate::ingress::{Permission, ANY_V4, ANY_V6};

/// Administrative and database ports: world-open is HIGH.
pub const ADMIN_PORTS: [u16; 7] = [22, 3389, 1433, 3306, 5432, 27017, 6379];
/// Other privileged ports (below 1024): world-open is MEDIUM.
pub const PRIVILEGED_PORTS: [u16; 19] = [
    20, 21, 23, 25, 69, 110, 111, 135, 137, 138, 139, 143, 161, 389, 445, 512, 513, 514, 873,
];

/// Security groups, as Config names them.
pub const RESOURCE_TYPE: &str = "AWS::EC2::SecurityGroup";

/// The rule's `ports` input parameter (`"22,3389"`), or `default` when absent.
pub fn ports(parameter: Option<&str>, default: &[u16]) -> Result<Vec<u16>, String> {
    let Some(text) = parameter.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(default.to_vec());
    };
    text.split(',')
        .map(|p| {
            p.trim()
                .parse::<u16>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("ports: {p:?} is not a port (1-65535)"))
        })
        .collect()
}

/// The ingress permissions of a configuration item's `configuration` (Config writes
/// `ipv4Ranges` with `cidrIp` and `ipv6Ranges` with `cidrIpv6`; older items only the
/// flat `ipRanges`).
fn permissions(configuration: &Value) -> Vec<Permission> {
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let cidrs = |p: &Value, list: &str, key: &str| -> Vec<String> {
        p.get(list)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|r| text(r, key)).collect())
            .unwrap_or_default()
    };
    let port = |p: &Value, k: &str| {
        p.get(k)
            .and_then(Value::as_i64)
            .and_then(|n| i32::try_from(n).ok())
    };
    configuration
        .get("ipPermissions")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|p| {
                    let mut ipv4 = cidrs(p, "ipv4Ranges", "cidrIp");
                    if ipv4.is_empty() {
                        ipv4 = p
                            .get("ipRanges")
                            .and_then(Value::as_array)
                            .map(|a| {
                                a.iter()
                                    .filter_map(|r| r.as_str().map(str::to_string))
                                    .collect()
                            })
                            .unwrap_or_default();
                    }
                    Permission {
                        protocol: text(p, "ipProtocol").unwrap_or_else(|| "-1".into()),
                        from_port: port(p, "fromPort"),
                        to_port: port(p, "toPort"),
                        ipv4,
                        ipv6: cidrs(p, "ipv6Ranges", "cidrIpv6"),
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Evaluates one security group's configuration item (`configuration` holds its
/// `ipPermissions`) against `ports`.
pub fn evaluate(resource_id: &str, configuration: &Value, ports: &[u16]) -> Evaluation {
    evaluate_permissions(resource_id, permissions(configuration), ports)
}

/// Evaluates one security group's ingress permissions (as EC2 describes them, for a
/// periodic run) against `ports`.
pub fn evaluate_permissions(
    resource_id: &str,
    ingress: Vec<Permission>,
    ports: &[u16],
) -> Evaluation {
    let offending: Vec<String> = ingress
        .into_iter()
        .filter_map(|mut p| {
            p.ipv4.retain(|c| c == ANY_V4);
            p.ipv6.retain(|c| c == ANY_V6);
            let open = !(p.ipv4.is_empty() && p.ipv6.is_empty());
            (open && p.covers_any(ports)).then(|| p.describe())
        })
        .collect();
    let (compliance, note) = if offending.is_empty() {
        ("COMPLIANT", None)
    } else {
        (
            "NON_COMPLIANT",
            Some(annotation(&format!(
                "open to the world: {}",
                offending.join("; ")
            ))),
        )
    };
    Evaluation {
        resource_type: RESOURCE_TYPE.into(),
        resource_id: resource_id.into(),
        compliance,
        annotation: note,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn group(perms: Value) -> Value {
        json!({ "groupName": "web", "ipPermissions": perms })
    }

    fn open(port: i64, cidr: &str) -> Value {
        json!({"ipProtocol": "tcp", "fromPort": port, "toPort": port,
               "ipv4Ranges": if cidr.contains(':') { json!([]) } else { json!([{"cidrIp": cidr}]) },
               "ipv6Ranges": if cidr.contains(':') { json!([{"cidrIpv6": cidr}]) } else { json!([]) },
               "ipRanges": if cidr.contains(':') { json!([]) } else { json!([cidr]) }})
    }

    #[test]
    fn a_world_open_admin_port_is_non_compliant_and_named() {
        let e = evaluate(
            "sg-1",
            &group(json!([open(22, "0.0.0.0/0"), open(443, "0.0.0.0/0")])),
            &ADMIN_PORTS,
        );
        assert_eq!(e.compliance, "NON_COMPLIANT");
        assert_eq!(
            e.annotation.as_deref(),
            Some("open to the world: tcp 22 from 0.0.0.0/0")
        );
        let v6 = evaluate("sg-1", &group(json!([open(3389, "::/0")])), &ADMIN_PORTS);
        assert_eq!(v6.compliance, "NON_COMPLIANT");
    }

    #[test]
    fn narrow_sources_web_ports_and_the_other_list_are_compliant() {
        let g = group(json!([
            open(22, "10.0.0.0/8"),
            open(80, "0.0.0.0/0"),
            open(443, "::/0")
        ]));
        assert_eq!(evaluate("sg-1", &g, &ADMIN_PORTS).compliance, "COMPLIANT");
        assert_eq!(
            evaluate("sg-1", &g, &PRIVILEGED_PORTS).compliance,
            "COMPLIANT"
        );
        let ftp = group(json!([open(21, "0.0.0.0/0")]));
        assert_eq!(evaluate("sg-1", &ftp, &ADMIN_PORTS).compliance, "COMPLIANT");
        assert_eq!(
            evaluate("sg-1", &ftp, &PRIVILEGED_PORTS).compliance,
            "NON_COMPLIANT"
        );
    }

    #[test]
    fn ranges_all_traffic_and_old_items_are_read() {
        let range =
            json!({"ipProtocol": "tcp", "fromPort": 0, "toPort": 65535, "ipRanges": ["0.0.0.0/0"]});
        let e = evaluate("sg-1", &group(json!([range])), &ADMIN_PORTS);
        assert_eq!(
            e.annotation.as_deref(),
            Some("open to the world: tcp 0-65535 from 0.0.0.0/0")
        );
        let all = json!({"ipProtocol": "-1", "ipv4Ranges": [{"cidrIp": "0.0.0.0/0"}]});
        assert_eq!(
            evaluate("sg-1", &group(json!([all])), &PRIVILEGED_PORTS).compliance,
            "NON_COMPLIANT"
        );
        let icmp = json!({"ipProtocol": "icmp", "fromPort": -1, "toPort": -1, "ipv4Ranges": [{"cidrIp": "0.0.0.0/0"}]});
        assert_eq!(
            evaluate("sg-1", &group(json!([icmp])), &ADMIN_PORTS).compliance,
            "COMPLIANT"
        );
        assert_eq!(
            evaluate("sg-1", &json!({}), &ADMIN_PORTS).compliance,
            "COMPLIANT"
        );
    }

    #[test]
    fn annotations_stay_within_what_config_accepts() {
        let many: Vec<Value> = (1..200).map(|p| open(p, "0.0.0.0/0")).collect();
        let e = evaluate("sg-1", &group(Value::Array(many)), &PRIVILEGED_PORTS);
        assert!(e.annotation.unwrap().chars().count() <= super::super::MAX_ANNOTATION);
    }

    #[test]
    fn port_parameters() {
        assert_eq!(ports(None, &ADMIN_PORTS).unwrap(), ADMIN_PORTS);
        assert_eq!(ports(Some(" 22, 8080 "), &ADMIN_PORTS).unwrap(), [22, 8080]);
        assert!(ports(Some("22,ssh"), &ADMIN_PORTS).is_err());
        assert!(ports(Some("0"), &ADMIN_PORTS).is_err());
    }

    #[test]
    fn the_defaults_are_the_default_policys_fix_ports() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../infra/policies/default.toml"
        );
        let policy = crate::policy::Policy::from_file(std::path::Path::new(path)).unwrap();
        let ports_of = |id: &str| match &policy.rule(id).unwrap().action {
            crate::policy::Action::Fix(crate::policy::Fix::RevokePublicIngress { ports }) => {
                ports.clone().unwrap()
            }
            other => panic!("{id}: {other:?}"),
        };
        assert_eq!(ports_of("sg-open-admin-ports"), ADMIN_PORTS);
        assert_eq!(ports_of("sg-open-privileged-ports"), PRIVILEGED_PORTS);
    }
}
