//! Parameter Store paths of the baseline model: an application's live parameters under a
//! current prefix (`/payments/current/`), their approved values under a baseline prefix
//! (`/payments/approved/`). A prefix may name the application with `{app}`
//! (`/{app}/current/`), so one policy rule and one Config rule serve every application;
//! `{app}` then stands for exactly one path segment, the same on both sides.

/// The application placeholder.
pub const APP: &str = "{app}";

/// Whether `name` can be an application's path segment: letters, digits, `.`, `_`, `-`.
pub fn is_app_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// Checks one prefix: starts and ends with `/`, and holds `{app}` at most once, as a
/// whole segment.
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    if !(prefix.starts_with('/') && prefix.ends_with('/') && prefix.len() > 1) {
        return Err(format!("prefix {prefix:?} must start and end with '/'"));
    }
    match prefix.matches(APP).count() {
        0 => Ok(()),
        1 if prefix.contains(&format!("/{APP}/")) => Ok(()),
        _ => Err(format!(
            "prefix {prefix:?}: {APP} may appear once, as a whole segment (\"/{APP}/current/\")"
        )),
    }
}

/// Checks a (baseline, current) pair: each prefix valid, both or neither naming `{app}`,
/// and neither inside the other (with `/{app}/` and `/{app}/approved/`, every baseline
/// would also be a live parameter without a baseline: "unauthorized", and deletable).
pub fn check_pair(baseline: &str, current: &str) -> Result<(), String> {
    check_prefix(baseline)?;
    check_prefix(current)?;
    if baseline.contains(APP) != current.contains(APP) {
        return Err(format!(
            "use {APP} in both `baseline_prefix` and `current_prefix` or in neither"
        ));
    }
    if baseline == current {
        return Err("`baseline_prefix` and `current_prefix` must differ".into());
    }
    let (b, c) = (for_app(baseline, "app"), for_app(current, "app"));
    if b.starts_with(&c) || c.starts_with(&b) {
        return Err(format!(
            "`baseline_prefix` {baseline:?} and `current_prefix` {current:?} must not lie inside one another"
        ));
    }
    Ok(())
}

/// `prefix` with `{app}` replaced, e.g. `/{app}/current/` → `/payments/current/`.
pub fn for_app(prefix: &str, app: &str) -> String {
    prefix.replace(APP, app)
}

/// A parameter name under a prefix: the application `{app}` stood for (if the prefix
/// names one) and the part after the prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split<'a> {
    /// The application segment, when the prefix has `{app}`.
    pub app: Option<&'a str>,
    /// The name after the prefix (never empty).
    pub rest: &'a str,
}

/// The longest parameter name Parameter Store accepts.
pub const MAX_NAME: usize = 1011;

/// Whether Parameter Store could hold a parameter of this name: letters, digits, `_`,
/// `.`, `-` and `/` only (so never `name:3`, which `GetParameter` reads as version 3 of
/// `name`), starting with `/`, with no empty segment.
pub fn is_parameter_name(name: &str) -> bool {
    name.len() <= MAX_NAME
        && name.starts_with('/')
        && !name.ends_with('/')
        && !name.contains("//")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c))
}

/// Splits `name` by `prefix`; `None` when the name is not under it or is not a name
/// Parameter Store could hold.
pub fn split<'a>(prefix: &str, name: &'a str) -> Option<Split<'a>> {
    if !is_parameter_name(name) {
        return None;
    }
    let Some((before, after)) = prefix.split_once(APP) else {
        let rest = name.strip_prefix(prefix)?;
        return (!rest.is_empty()).then_some(Split { app: None, rest });
    };
    let tail = name.strip_prefix(before)?;
    let (app, tail) = tail.split_at(tail.find('/')?);
    let rest = tail.strip_prefix(after)?;
    (is_app_name(app) && !rest.is_empty()).then_some(Split {
        app: Some(app),
        rest,
    })
}

/// The name under `to` of the parameter `name` under `from`: the same application and
/// the same rest (`/payments/current/pool` → `/payments/approved/pool`).
pub fn counterpart(from: &str, to: &str, name: &str) -> Result<String, String> {
    let s = split(from, name).ok_or_else(|| format!("parameter {name} is not under {from}"))?;
    let to = match s.app {
        Some(app) => for_app(to, app),
        None => to.to_string(),
    };
    Ok(format!("{to}{}", s.rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_checked() {
        assert!(check_prefix("/payments/current/").is_ok());
        assert!(check_prefix("/{app}/current/").is_ok());
        assert!(check_prefix("payments/current/").is_err());
        assert!(check_prefix("/payments/current").is_err());
        assert!(check_prefix("/x{app}/current/").is_err());
        assert!(check_prefix("/{app}/{app}/").is_err());
        assert!(check_pair("/{app}/approved/", "/{app}/current/").is_ok());
        assert!(check_pair("/{app}/approved/", "/payments/current/").is_err());
        assert!(check_pair("/a/", "/a/").is_err());
        // One inside the other: every baseline would look unauthorized.
        assert!(check_pair("/{app}/approved/", "/{app}/").is_err());
        assert!(check_pair("/{app}/", "/{app}/current/").is_err());
        assert!(check_pair("/a/approved/", "/a/").is_err());
    }

    #[test]
    fn only_names_parameter_store_could_hold_are_split() {
        assert!(is_parameter_name("/payments/current/db.pool_size-2"));
        for bad in [
            "/payments/current/x:3",
            "/payments/current//x",
            "/payments/current/x/",
            "/payments/current/x y",
            "/payments/current/é",
            "payments/current/x",
        ] {
            assert!(!is_parameter_name(bad), "{bad}");
            assert!(split("/{app}/current/", bad).is_none(), "{bad}");
            assert!(counterpart("/{app}/current/", "/{app}/approved/", bad).is_err());
        }
        let long = format!("/payments/current/{}", "x".repeat(MAX_NAME));
        assert!(split("/{app}/current/", &long).is_none());
    }

    #[test]
    fn names_split_and_map_across() {
        let s = split("/{app}/current/", "/payments/current/db/pool").unwrap();
        assert_eq!((s.app, s.rest), (Some("payments"), "db/pool"));
        assert_eq!(
            counterpart("/{app}/current/", "/{app}/approved/", "/orders/current/x").unwrap(),
            "/orders/approved/x"
        );
        assert_eq!(
            counterpart(
                "/payments/current/",
                "/payments/approved/",
                "/payments/current/x"
            )
            .unwrap(),
            "/payments/approved/x"
        );
        // Not under the prefix, nothing after it, or not an application segment.
        assert!(split("/{app}/current/", "/payments/approved/x").is_none());
        assert!(split("/{app}/current/", "/payments/current/").is_none());
        assert!(split("/{app}/current/", "/pay ments/current/x").is_none());
        assert!(split("/payments/current/", "/payments/current/").is_none());
        assert!(counterpart("/{app}/current/", "/{app}/approved/", "/x").is_err());
    }
}
