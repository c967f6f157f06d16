//! ARN shapes that CreateSession takes: trust anchors and profiles (`rolesanywhere`) and
//! IAM roles. The emulator only needs to split them, check their shape the way the service's
//! input validation does, and compare partition, region and account.

/// The six colon-separated fields of an ARN. The resource keeps any further colons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

/// What kind of resource an ARN must name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArnKind {
    TrustAnchor,
    Profile,
    Role,
}

impl ArnKind {
    /// Human name, used in messages ("trust anchor ARN").
    pub fn what(self) -> &'static str {
        match self {
            ArnKind::TrustAnchor => "trust anchor",
            ArnKind::Profile => "profile",
            ArnKind::Role => "role",
        }
    }
}

impl<'a> Arn<'a> {
    /// Splits `arn:partition:service:region:account:resource`; `None` when the shape is wrong.
    fn split(s: &'a str) -> Option<Self> {
        let mut it = s.splitn(6, ':');
        if it.next()? != "arn" {
            return None;
        }
        let arn = Arn {
            partition: it.next()?,
            service: it.next()?,
            region: it.next()?,
            account: it.next()?,
            resource: it.next()?,
        };
        Some(arn)
    }

    /// Parses and checks an ARN of the given kind; the error says what is wrong with it.
    pub fn parse(s: &'a str, kind: ArnKind) -> Result<Self, String> {
        let arn = Arn::split(s)
            .ok_or_else(|| "expected arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE".to_string())?;
        // Partitions are `aws`, `aws-cn`, `aws-us-gov`, ...: keep the check loose but non-empty.
        if arn.partition.is_empty() || !arn.partition.starts_with("aws") {
            return Err(format!(
                "partition '{}' is not an AWS partition",
                arn.partition
            ));
        }
        if arn.account.len() != 12 || !arn.account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "account '{}' is not a 12-digit account id",
                arn.account
            ));
        }
        match kind {
            ArnKind::TrustAnchor | ArnKind::Profile => {
                if arn.service != "rolesanywhere" {
                    return Err(format!(
                        "service is '{}', expected 'rolesanywhere'",
                        arn.service
                    ));
                }
                if arn.region.is_empty() {
                    return Err("the region field is empty".to_string());
                }
                let prefix = if kind == ArnKind::TrustAnchor {
                    "trust-anchor/"
                } else {
                    "profile/"
                };
                match arn.resource.strip_prefix(prefix) {
                    Some(id) if !id.is_empty() && !id.contains('/') => {}
                    _ => return Err(format!("resource '{}' is not '{prefix}ID'", arn.resource)),
                }
            }
            ArnKind::Role => {
                if arn.service != "iam" {
                    return Err(format!("service is '{}', expected 'iam'", arn.service));
                }
                if !arn.region.is_empty() {
                    return Err("IAM ARNs have an empty region field".to_string());
                }
                match arn.resource.strip_prefix("role/") {
                    Some(rest) if !rest.is_empty() && !rest.ends_with('/') => {}
                    _ => return Err(format!("resource '{}' is not 'role/NAME'", arn.resource)),
                }
            }
        }
        Ok(arn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_anchor_profile_and_role_arns_parse() {
        let ta = Arn::parse(
            "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/ta1",
            ArnKind::TrustAnchor,
        )
        .unwrap();
        assert_eq!(
            (ta.partition, ta.region, ta.account),
            ("aws", "us-east-1", "111122223333")
        );
        Arn::parse(
            "arn:aws-cn:rolesanywhere:cn-north-1:111122223333:profile/p1",
            ArnKind::Profile,
        )
        .unwrap();
        let role =
            Arn::parse("arn:aws:iam::111122223333:role/path/to/exam", ArnKind::Role).unwrap();
        assert_eq!(role.resource, "role/path/to/exam");
    }

    #[test]
    fn malformed_arns_are_refused_with_a_reason() {
        for (arn, kind) in [
            (
                "arn:aws:rolesanywhere:us-east-1:111122223333:profile/p1",
                ArnKind::TrustAnchor,
            ),
            (
                "arn:aws:rolesanywhere::111122223333:trust-anchor/ta1",
                ArnKind::TrustAnchor,
            ),
            (
                "arn:aws:rolesanywhere:us-east-1:1111:trust-anchor/ta1",
                ArnKind::TrustAnchor,
            ),
            ("arn:aws:iam:us-east-1:111122223333:role/x", ArnKind::Role),
            ("arn:aws:iam::111122223333:user/x", ArnKind::Role),
            ("not-an-arn", ArnKind::Profile),
            (
                "arn:aws:rolesanywhere:us-east-1:111122223333:profile/",
                ArnKind::Profile,
            ),
        ] {
            assert!(Arn::parse(arn, kind).is_err(), "{arn} accepted as {kind:?}");
        }
    }
}
