//! Which security-group ingress to revoke for `revoke_public_ingress`. Pure: the EC2 seam
//! converts to and from the SDK's types.

/// IPv4 "anywhere".
pub const ANY_V4: &str = "0.0.0.0/0";
/// IPv6 "anywhere".
pub const ANY_V6: &str = "::/0";

/// One ingress permission: a protocol and port range with its sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    /// `tcp`, `udp`, `icmp`, a protocol number, or `-1` for all.
    pub protocol: String,
    /// First port (absent for all-protocol permissions).
    pub from_port: Option<i32>,
    /// Last port.
    pub to_port: Option<i32>,
    /// IPv4 CIDR sources.
    pub ipv4: Vec<String>,
    /// IPv6 CIDR sources.
    pub ipv6: Vec<String>,
}

impl Permission {
    /// The first of `ports` this permission's range covers (all-traffic covers every one).
    pub fn first_covered(&self, ports: &[u16]) -> Option<u16> {
        ports.iter().copied().find(|&p| self.covers_any(&[p]))
    }

    /// Whether the permission's range covers any of `ports`.
    pub fn covers_any(&self, ports: &[u16]) -> bool {
        match self.protocol.as_str() {
            "-1" => true,
            "tcp" | "udp" | "6" | "17" => {
                let (from, to) = (self.from_port.unwrap_or(0), self.to_port.unwrap_or(65535));
                ports
                    .iter()
                    .any(|&p| from <= i32::from(p) && i32::from(p) <= to)
            }
            // ICMP and other protocols have no ports to match.
            _ => false,
        }
    }

    /// Human form, e.g. `tcp 22 from 0.0.0.0/0`.
    pub fn describe(&self) -> String {
        let ports = match (self.protocol.as_str(), self.from_port, self.to_port) {
            ("-1", _, _) => "all traffic".to_string(),
            (p, Some(a), Some(b)) if a == b => format!("{p} {a}"),
            (p, Some(a), Some(b)) => format!("{p} {a}-{b}"),
            (p, _, _) => p.to_string(),
        };
        let sources: Vec<&str> = self
            .ipv4
            .iter()
            .chain(&self.ipv6)
            .map(String::as_str)
            .collect();
        format!("{ports} from {}", sources.join(", "))
    }
}

/// The parts of `permissions` to revoke: world-open sources (only those, so narrower
/// sources of the same permission stay) of permissions covering any of `ports`
/// (`None`: any permission).
pub fn world_open(permissions: &[Permission], ports: Option<&[u16]>) -> Vec<Permission> {
    permissions
        .iter()
        .filter(|p| ports.is_none_or(|ports| p.covers_any(ports)))
        .filter_map(|p| {
            let ipv4: Vec<String> = p.ipv4.iter().filter(|c| *c == ANY_V4).cloned().collect();
            let ipv6: Vec<String> = p.ipv6.iter().filter(|c| *c == ANY_V6).cloned().collect();
            (!ipv4.is_empty() || !ipv6.is_empty()).then(|| Permission {
                ipv4,
                ipv6,
                ..p.clone()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(proto: &str, from: i32, to: i32, v4: &[&str], v6: &[&str]) -> Permission {
        Permission {
            protocol: proto.into(),
            from_port: Some(from),
            to_port: Some(to),
            ipv4: v4.iter().map(|s| s.to_string()).collect(),
            ipv6: v6.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn revokes_only_world_open_sources_of_matching_ports() {
        let perms = vec![
            perm("tcp", 22, 22, &[ANY_V4, "10.0.0.0/8"], &[]),
            perm("tcp", 443, 443, &[ANY_V4], &[ANY_V6]),
            perm("tcp", 20, 25, &["10.0.0.0/8"], &[ANY_V6]),
        ];
        let out = world_open(&perms, Some(&[22]));
        assert_eq!(
            out,
            vec![
                perm("tcp", 22, 22, &[ANY_V4], &[]),
                perm("tcp", 20, 25, &[], &[ANY_V6]),
            ]
        );
    }

    #[test]
    fn any_port_when_ports_absent_and_all_traffic_covers_everything() {
        let all = Permission {
            protocol: "-1".into(),
            from_port: None,
            to_port: None,
            ipv4: vec![ANY_V4.into()],
            ipv6: vec![],
        };
        let perms = vec![perm("udp", 53, 53, &[ANY_V4], &[]), all.clone()];
        assert_eq!(world_open(&perms, None).len(), 2);
        assert_eq!(world_open(&perms, Some(&[3389])), vec![all]);
        assert!(world_open(&[perm("icmp", -1, -1, &[ANY_V4], &[])], Some(&[22])).is_empty());
    }

    #[test]
    fn nothing_open_means_nothing_to_revoke() {
        let perms = vec![perm("tcp", 22, 22, &["10.0.0.0/8"], &[])];
        assert!(world_open(&perms, Some(&[22])).is_empty());
        assert_eq!(
            perm("tcp", 20, 25, &[ANY_V4], &[]).describe(),
            "tcp 20-25 from 0.0.0.0/0"
        );
    }
}
