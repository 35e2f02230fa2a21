//! `redress runbooks list` and `redress runbooks show NAME`: the runbook catalog shipped
//! with redress (`infra/runbooks/catalog.json`, see [`redress::catalog`]). No AWS calls.
//!
//! The catalog is redress's own data, not input from an event or a queue, so its text is
//! printed as it is; only the name a user typed is cleaned.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use redress::catalog::{Catalog, Document, Pairing, Parameter, Source};
use redress::text::clean;
use serde::Serialize;

use crate::cli::RunbooksCommand;
use crate::error::{CliError, CliResult};
use crate::output;

/// Runs a `runbooks` subcommand.
pub fn run(command: &RunbooksCommand) -> CliResult {
    let catalog = Catalog::shipped();
    let out = match command {
        RunbooksCommand::List { json: false } => list_text(catalog),
        RunbooksCommand::List { json: true } => list_json(catalog)?,
        RunbooksCommand::Show { name, json } => {
            let doc = find(catalog, name)?;
            if *json {
                output::json_pretty(doc)? + "\n"
            } else {
                show_text(doc)
            }
        }
    };
    print!("{out}");
    Ok(())
}

/// The document of this exact name, or a usage error that says what was probably meant.
pub fn find<'a>(catalog: &'a Catalog, name: &str) -> CliResult<&'a Document> {
    if let Some(doc) = catalog.get(name) {
        return Ok(doc);
    }
    let shown = clean(name);
    if catalog
        .aws_config_remediation_names
        .iter()
        .any(|a| a == name)
    {
        return Err(CliError::input(format!(
            "{shown} is an AWS-owned document outside redress's catalog: redress knows nothing about its parameters"
        )));
    }
    let message = match catalog.suggest_document(name) {
        Some(meant) => {
            let why = if meant.eq_ignore_ascii_case(name) {
                " (names are case-sensitive)"
            } else if catalog.get(&meant).is_none() {
                " (an AWS-owned document outside redress's catalog)"
            } else {
                ""
            };
            format!("no runbook {shown} in the catalog; did you mean {meant}?{why}")
        }
        None => format!(
            "no runbook {shown} in the catalog (`redress runbooks list` shows the {} it holds)",
            catalog.documents.len()
        ),
    };
    Err(CliError::input(message))
}

/// The resource types a document changes: its TargetType, else the types of the Config
/// rules it pairs with (AWS writes some of those as prose, which is left out).
fn resource_types(doc: &Document) -> Vec<&str> {
    if let Some(target) = doc.target_type.as_deref() {
        let target = target.trim_start_matches('/');
        if !target.is_empty() {
            return vec![target];
        }
    }
    let types: BTreeSet<&str> = doc
        .config_rules
        .iter()
        .map(|r| r.resource_types.as_str())
        .filter(|t| t.starts_with("AWS::"))
        .collect();
    types.into_iter().collect()
}

/// Whether an AWS source runs exactly this document for one of its rules.
fn confirmed(doc: &Document) -> bool {
    doc.config_rules.iter().any(|r| r.confirmed)
}

/// `runbooks list --json`: one summary per document, in the catalog's order.
#[derive(Serialize)]
struct ListDoc<'a> {
    /// Where the catalog's facts come from.
    source: &'a Source,
    documents: Vec<Summary<'a>>,
}

/// One document in `runbooks list --json`.
#[derive(Serialize)]
struct Summary<'a> {
    name: &'a str,
    description: &'a str,
    /// Resource types it changes (its TargetType, else its rules').
    resource_types: Vec<&'a str>,
    /// AWS Config managed rules it pairs with.
    config_rules: Vec<&'a str>,
    /// How many parameters it declares.
    parameters: usize,
    /// The ones without a default.
    required_parameters: Vec<&'a str>,
    /// Whether redress could put its change back.
    undoable: bool,
    /// Whether an AWS source runs exactly this document for one of its rules.
    confirmed: bool,
    /// Whether the local stack emulates its effect.
    emulated: bool,
    /// Exists only on the local stack.
    test_only: bool,
}

impl<'a> From<&'a Document> for Summary<'a> {
    fn from(d: &'a Document) -> Self {
        Summary {
            name: &d.name,
            description: &d.description,
            resource_types: resource_types(d),
            config_rules: d
                .config_rules
                .iter()
                .map(|r| r.rule_name.as_str())
                .collect(),
            parameters: d.parameters.len(),
            required_parameters: d
                .parameters
                .iter()
                .filter(|p| p.required)
                .map(|p| p.name.as_str())
                .collect(),
            undoable: d.undo.is_some(),
            confirmed: confirmed(d),
            emulated: d.emulated,
            test_only: d.test_only,
        }
    }
}

/// `runbooks list --json`.
pub fn list_json(catalog: &Catalog) -> CliResult<String> {
    let doc = ListDoc {
        source: &catalog.source,
        documents: catalog.documents().map(Summary::from).collect(),
    };
    Ok(output::json(&doc)? + "\n")
}

/// `runbooks list`: one row per document, and what the columns mean.
pub fn list_text(catalog: &Catalog) -> String {
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let mut table = output::table([
        "NAME",
        "RESOURCE TYPE",
        "CONFIG RULES",
        "PARAMETERS",
        "UNDO",
        "CONFIRMED",
    ]);
    for d in catalog.documents() {
        let required = d.parameters.iter().filter(|p| p.required).count();
        let (types, rules, confirmed) = if d.test_only {
            (
                "-".to_string(),
                "(local stack test document)".to_string(),
                "-",
            )
        } else if d.config_rules.is_empty() {
            (resource_types(d).join(", "), "-".to_string(), "-")
        } else {
            let rules: Vec<&str> = d
                .config_rules
                .iter()
                .map(|r| r.rule_name.as_str())
                .collect();
            (
                resource_types(d).join(", "),
                rules.join(", "),
                yes_no(confirmed(d)),
            )
        };
        table.add_row(vec![
            d.name.clone(),
            if types.is_empty() { "-".into() } else { types },
            rules,
            format!("{} ({required} required)", d.parameters.len()),
            yes_no(d.undo.is_some()).to_string(),
            confirmed.to_string(),
        ]);
    }
    let test_only = catalog.documents().filter(|d| d.test_only).count();
    let mut out = output::render(&table);
    let _ = writeln!(
        out,
        "\n{} documents ({} AWS-owned, {test_only} local stack test documents), from AWS's document content of {} ({}).",
        catalog.documents.len(),
        catalog.documents.len() - test_only,
        catalog.source.dump_date,
        catalog.source.region,
    );
    out.push_str(
        "UNDO: redress could put the change back. CONFIRMED: an AWS source runs exactly this \
         document for one of its rules (otherwise AWS runs its own copy, a tutorial pairs \
         them, or they only share a resource).\n`redress runbooks show NAME` prints a \
         document's parameters, IAM actions and sources.\n",
    );
    out
}

/// How a pairing is evidenced, in words.
fn pairing(p: Pairing) -> &'static str {
    match p {
        Pairing::AwsTemplate => "an AWS template runs it for this rule",
        Pairing::AwsSolutionDerived => "AWS's solution runs its own copy of it",
        Pairing::ThirdPartyExample => "a public tutorial pairs them",
        Pairing::Unconfirmed => "unconfirmed: they only share a resource or setting",
    }
}

/// What a parameter accepts beyond its type: its allowed values or its pattern.
fn accepts(p: &Parameter) -> String {
    match (&p.allowed, &p.pattern) {
        (Some(allowed), _) => format!("one of {}", allowed.join(", ")),
        (None, Some(pattern)) => format!("pattern {pattern}"),
        (None, None) => "-".into(),
    }
}

/// `runbooks show NAME`: everything the catalog knows about one document.
pub fn show_text(d: &Document) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(d.name.clone());
    line(format!("  {}", d.description));
    let owner = if d.test_only {
        "the local stack only (a test document; AWS has no such document)".to_string()
    } else {
        d.owner.clone()
    };
    line(format!(
        "  owner {owner}; document version {}; resource type {}",
        d.document_version,
        match resource_types(d).join(", ") {
            t if t.is_empty() => "-".to_string(),
            t => t,
        }
    ));
    if let Some(page) = &d.runbook_page {
        line(format!("  AWS page: {page}"));
    }

    line(String::new());
    line("parameters:".into());
    let mut table = output::table(["NAME", "TYPE", "REQUIRED", "DEFAULT", "ACCEPTS"]);
    for p in &d.parameters {
        table.add_row(vec![
            p.name.clone(),
            p.kind.to_string(),
            if p.required { "yes" } else { "no" }.to_string(),
            p.default.as_ref().map_or("-".into(), |v| format!("{v:?}")),
            accepts(p),
        ]);
    }
    for row in output::render(&table).lines() {
        line(format!("  {row}"));
    }
    match &d.resource_id_parameter {
        Some(r) => line(format!(
            "resource id: {} takes the noncompliant resource's id ({}: {})",
            r.name,
            if r.confirmed {
                "confirmed"
            } else {
                "unconfirmed"
            },
            r.basis
        )),
        None => line("resource id: none (the document does not take the resource's id)".into()),
    }
    line(format!(
        "assume role: AutomationAssumeRole is {} (the executor passes the action's assume_role)",
        if d.assume_role_required {
            "required"
        } else {
            "optional"
        }
    ));

    line(String::new());
    let perms = &d.permissions;
    line(format!(
        "IAM actions its automation role needs ({}):",
        if perms.confirmed {
            "confirmed"
        } else {
            "unconfirmed"
        }
    ));
    for a in &perms.actions {
        line(format!("  {a}"));
    }
    if !perms.calls_not_listed.is_empty() {
        line(format!(
            "  its steps also call, not listed: {}",
            perms.calls_not_listed.join(", ")
        ));
    }
    line(format!("  basis: {}", perms.basis));

    line(String::new());
    if d.config_rules.is_empty() {
        line("config rules: none paired".into());
    } else {
        line("config rules:".into());
    }
    for r in &d.config_rules {
        line(format!(
            "  {} ({}; {}): {}{}",
            r.rule_name,
            r.identifier,
            r.resource_types,
            pairing(r.pairing),
            if r.confirmed { ", confirmed" } else { "" }
        ));
        line(format!("    {}", r.pairing_basis));
        line(format!("    source: {}", r.source));
    }

    line(String::new());
    match (&d.undo, &d.undo_note) {
        (Some(u), _) => line(format!(
            "undo: {} (needs, read before the change: {})",
            u.inverse, u.needs_before
        )),
        (None, Some(note)) => line(format!("undo: not possible: {note}")),
        (None, None) => line("undo: not possible".into()),
    }
    line(format!(
        "local stack: {}",
        if d.emulated {
            "emulates its effect"
        } else {
            "validates its parameters; effect not emulated"
        }
    ));
    for (title, items) in [("remarks", &d.remarks), ("unconfirmed", &d.unconfirmed)] {
        if !items.is_empty() {
            line(format!("{title}:"));
            for item in items {
                line(format!("  - {item}"));
            }
        }
    }
    line("sources:".into());
    for s in &d.sources {
        line(format!("  {s}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_has_a_row_per_document_in_the_catalogs_order() {
        let catalog = Catalog::shipped();
        let out = list_text(catalog);
        let rows: Vec<&str> = out.lines().skip(1).take_while(|l| !l.is_empty()).collect();
        let names: Vec<&str> = rows
            .iter()
            .map(|r| r.split_whitespace().next().unwrap())
            .collect();
        let expected: Vec<&str> = catalog.documents().map(|d| d.name.as_str()).collect();
        assert_eq!(names, expected);
        let s3 = rows
            .iter()
            .find(|r| r.starts_with("AWS-EnableS3BucketEncryption "))
            .unwrap();
        assert!(
            s3.contains("AWS::S3::Bucket")
                && s3.contains("s3-bucket-server-side-encryption-enabled")
                && s3.contains("3 (1 required)"),
            "{s3}"
        );
        let last: Vec<&str> = s3.split_whitespace().rev().take(2).collect();
        assert_eq!(last, ["yes", "yes"], "undoable and confirmed: {s3}");
        let sleep = rows
            .iter()
            .find(|r| r.starts_with("Redress-Test-Sleep "))
            .unwrap();
        assert!(sleep.contains("local stack test document"), "{sleep}");
    }

    #[test]
    fn the_json_list_summarises_every_document() {
        let catalog = Catalog::shipped();
        let doc: serde_json::Value = serde_json::from_str(&list_json(catalog).unwrap()).unwrap();
        let docs = doc["documents"].as_array().unwrap();
        assert_eq!(docs.len(), catalog.documents.len());
        let imds = docs
            .iter()
            .find(|d| d["name"] == "AWSConfigRemediation-EnforceEC2InstanceIMDSv2")
            .unwrap();
        assert_eq!(imds["resource_types"][0], "AWS::EC2::Instance");
        assert_eq!(imds["config_rules"][0], "ec2-imdsv2-check");
        assert_eq!(imds["confirmed"], false);
        assert_eq!(doc["source"]["region"], catalog.source.region.as_str());
    }

    #[test]
    fn show_prints_parameters_role_permissions_undo_and_sources() {
        let catalog = Catalog::shipped();
        let doc = find(catalog, "AWS-EnableS3BucketEncryption").unwrap();
        let out = show_text(doc);
        let bucket = out
            .lines()
            .find(|l| l.trim_start().starts_with("BucketName "))
            .unwrap();
        let cells: Vec<&str> = bucket.split_whitespace().collect();
        assert_eq!(cells, ["BucketName", "String", "yes", "-", "-"], "{bucket}");
        let sse = out
            .lines()
            .find(|l| l.trim_start().starts_with("SSEAlgorithm "))
            .unwrap();
        let cells: Vec<&str> = sse.split_whitespace().collect();
        assert_eq!(
            cells,
            ["SSEAlgorithm", "String", "no", "\"AES256\"", "-"],
            "{sse}"
        );
        assert!(out.contains("resource id: BucketName"), "{out}");
        for a in &doc.permissions.actions {
            assert!(out.contains(&format!("  {a}\n")), "{a}: {out}");
        }
        assert!(out.contains("undo: "), "{out}");
        assert!(out.contains(&doc.sources[0]), "{out}");
        // Allowed values and patterns are shown.
        let versioning = show_text(find(catalog, "AWS-ConfigureS3BucketVersioning").unwrap());
        assert!(
            versioning.contains("one of Enabled, Suspended"),
            "{versioning}"
        );
        let volume =
            show_text(find(catalog, "AWSConfigRemediation-DeleteUnusedEBSVolume").unwrap());
        assert!(volume.contains("pattern ^vol-[0-9a-f]{17}$"), "{volume}");
        // A document that cannot be undone says why.
        let eip = show_text(find(catalog, "AWS-ReleaseElasticIP").unwrap());
        assert!(eip.contains("undo: not possible: "), "{eip}");
        assert!(eip.contains("unconfirmed"), "{eip}");
    }

    #[test]
    fn a_wrong_name_is_a_usage_error_that_says_what_was_meant() {
        let catalog = Catalog::shipped();
        let e = find(catalog, "AWS-EnableS3BucketEncryptoin").unwrap_err();
        assert_eq!(e.code, 2);
        assert!(
            e.message
                .contains("did you mean AWS-EnableS3BucketEncryption?"),
            "{}",
            e.message
        );
        let e = find(catalog, "AWS-EnforceEC2InstanceIMDSv2").unwrap_err();
        assert!(
            e.message
                .contains("did you mean AWSConfigRemediation-EnforceEC2InstanceIMDSv2?"),
            "{}",
            e.message
        );
        let e = find(catalog, "aws-enables3bucketencryption").unwrap_err();
        assert!(
            e.message
                .ends_with("did you mean AWS-EnableS3BucketEncryption? (names are case-sensitive)"),
            "{}",
            e.message
        );
        let outside = catalog
            .aws_config_remediation_names
            .iter()
            .find(|n| catalog.get(n).is_none())
            .unwrap();
        let e = find(catalog, outside).unwrap_err();
        assert_eq!(
            e.message,
            format!("{outside} is an AWS-owned document outside redress's catalog: redress knows nothing about its parameters")
        );
        let e = find(catalog, "Acme-\u{1b}[2KFix").unwrap_err();
        assert!(
            e.message.contains("no runbook Acme-") && !e.message.contains('\u{1b}'),
            "{}",
            e.message
        );
    }
}
