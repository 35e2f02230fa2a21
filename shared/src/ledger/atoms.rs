//! Security-group ingress as a set of atoms (protocol, port range, one source), so two
//! readings of a group compare equal however AWS grouped the sources into permissions,
//! and "what was revoked" can be subtracted from "what is there". Only CIDR sources are
//! seen ([`Permission`] holds no security-group or prefix-list sources), which is all a
//! revoke of world-open ingress touches.

use std::collections::BTreeSet;

use crate::ingress::Permission;

/// One protocol, port range and source.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Atom {
    /// Protocol, normalised (`6` → `tcp`, `17` → `udp`, `1` → `icmp`, `58` → `icmpv6`).
    pub protocol: String,
    /// First port; `None` for all-protocol permissions.
    pub from_port: Option<i32>,
    /// Last port.
    pub to_port: Option<i32>,
    /// One CIDR source.
    pub source: String,
}

/// The protocol as EC2 describes it: it accepts numbers but reports names for the common
/// ones, so a permission authorized as `6` reads back as `tcp`.
fn protocol(p: &str) -> String {
    match p.to_ascii_lowercase().as_str() {
        "6" => "tcp".into(),
        "17" => "udp".into(),
        "1" => "icmp".into(),
        "58" => "icmpv6".into(),
        "all" => "-1".into(),
        other => other.to_string(),
    }
}

/// The atoms of some permissions.
pub fn atoms(permissions: &[Permission]) -> BTreeSet<Atom> {
    permissions
        .iter()
        .flat_map(|p| {
            let proto = protocol(&p.protocol);
            // All-traffic permissions have no ports, whatever a reader filled in.
            let (from_port, to_port) = match proto.as_str() {
                "-1" => (None, None),
                _ => (p.from_port, p.to_port),
            };
            p.ipv4.iter().chain(&p.ipv6).map(move |source| Atom {
                protocol: proto.clone(),
                from_port,
                to_port,
                source: source.clone(),
            })
        })
        .collect()
}

/// Atoms back into permissions, one per (protocol, port range), sources split by family:
/// the shape `AuthorizeSecurityGroupIngress` takes.
pub fn permissions(atoms: &BTreeSet<Atom>) -> Vec<Permission> {
    let mut out: Vec<Permission> = Vec::new();
    // Atoms are sorted by protocol and ports first, so each permission's atoms are
    // adjacent.
    for a in atoms {
        let same = out.last().is_some_and(|p| {
            p.protocol == a.protocol && p.from_port == a.from_port && p.to_port == a.to_port
        });
        if !same {
            out.push(Permission {
                protocol: a.protocol.clone(),
                from_port: a.from_port,
                to_port: a.to_port,
                ipv4: vec![],
                ipv6: vec![],
            });
        }
        let p = out.last_mut().expect("pushed above");
        if a.source.contains(':') {
            p.ipv6.push(a.source.clone());
        } else {
            p.ipv4.push(a.source.clone());
        }
    }
    out
}

/// Human form of some permissions, `; `-separated (`none` when empty).
pub fn describe(permissions: &[Permission]) -> String {
    if permissions.is_empty() {
        return "none".into();
    }
    permissions
        .iter()
        .map(Permission::describe)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(proto: &str, from: Option<i32>, to: Option<i32>, sources: &[&str]) -> Permission {
        let (v6, v4): (Vec<&&str>, Vec<&&str>) = sources.iter().partition(|s| s.contains(':'));
        Permission {
            protocol: proto.into(),
            from_port: from,
            to_port: to,
            ipv4: v4.into_iter().map(|s| s.to_string()).collect(),
            ipv6: v6.into_iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn groupings_and_protocol_numbers_compare_equal() {
        let one = [perm("tcp", Some(22), Some(22), &["0.0.0.0/0", "::/0"])];
        let split = [
            perm("6", Some(22), Some(22), &["::/0"]),
            perm("TCP", Some(22), Some(22), &["0.0.0.0/0"]),
        ];
        assert_eq!(atoms(&one), atoms(&split));
        let all_a = [perm("-1", Some(0), Some(65535), &["0.0.0.0/0"])];
        let all_b = [perm("-1", None, None, &["0.0.0.0/0"])];
        assert_eq!(atoms(&all_a), atoms(&all_b));
        assert_ne!(
            atoms(&one),
            atoms(&[perm("tcp", Some(22), Some(23), &["0.0.0.0/0", "::/0"])])
        );
    }

    #[test]
    fn atoms_regroup_into_one_permission_per_range() {
        let perms = [
            perm("tcp", Some(22), Some(22), &["0.0.0.0/0"]),
            perm("tcp", Some(443), Some(443), &["10.0.0.0/8"]),
            perm("tcp", Some(22), Some(22), &["::/0"]),
        ];
        let back = permissions(&atoms(&perms));
        assert_eq!(
            back,
            vec![
                perm("tcp", Some(22), Some(22), &["0.0.0.0/0", "::/0"]),
                perm("tcp", Some(443), Some(443), &["10.0.0.0/8"]),
            ]
        );
        assert_eq!(atoms(&back), atoms(&perms));
        assert_eq!(
            describe(&back),
            "tcp 22 from 0.0.0.0/0, ::/0; tcp 443 from 10.0.0.0/8"
        );
        assert_eq!(describe(&[]), "none");
    }
}
