//! Recorded Config invocations (`tests/fixtures/config-invocations/`, in the shape AWS
//! documents) through the pure side: what each one asks for (the trigger, the rule and
//! its input parameters) and the evaluations the evaluators make of it. The SDK side
//! (`PutEvaluations`, oversized items fetched, periodic reads) is tested in the workers
//! crate over the same files.

use std::collections::BTreeMap;

use serde_json::Value;

use super::invocation::{parameters, trigger, Resource, Trigger};
use super::parameter_drift::{self, Parameter, DRIFTED, MISSING, UNAUTHORIZED};
use super::{security_group, with_gone, Evaluation, RuleKind, Settings, MAX_ANNOTATION};
use crate::parameter_path::for_app;

/// One recorded invocation, read as the evaluator reads it.
struct Recorded {
    rule: RuleKind,
    parameters: BTreeMap<String, String>,
    trigger: Trigger,
}

macro_rules! recorded {
    ($file:literal) => {
        read(include_str!(concat!(
            "../../../tests/fixtures/config-invocations/",
            $file
        )))
    };
}

fn read(text: &str) -> Recorded {
    let event: Value = serde_json::from_str(text).unwrap();
    let field = |key: &str| {
        event[key]
            .as_str()
            .unwrap_or_else(|| panic!("the invocation has no {key} string"))
    };
    Recorded {
        rule: RuleKind::for_rule(field("configRuleName")).unwrap(),
        parameters: parameters(Some(field("ruleParameters"))).unwrap(),
        trigger: trigger(
            field("invokingEvent"),
            event["eventLeftScope"].as_bool().unwrap(),
        )
        .unwrap(),
    }
}

impl Recorded {
    /// What `rule` (the invocation's own, or the other security-group rule over the same
    /// item) reports for the item a change notification carries.
    fn evaluate_as(&self, rule: RuleKind) -> Evaluation {
        let Settings::Ports(ports) = rule.settings(&self.parameters).unwrap() else {
            panic!("{} is not a security-group rule", rule.name());
        };
        let Trigger::Change {
            resource,
            configuration,
        } = &self.trigger
        else {
            panic!("not a change with its item: {:?}", self.trigger);
        };
        assert_eq!(resource.resource_type, rule.resource_type());
        fits(security_group::evaluate(
            &resource.resource_id,
            configuration,
            &ports,
        ))
    }

    fn evaluate(&self) -> Evaluation {
        self.evaluate_as(self.rule)
    }

    /// The resource of a deleted or out-of-scope one.
    fn gone(&self) -> &Resource {
        match &self.trigger {
            Trigger::Gone { resource } => resource,
            other => panic!("not gone: {other:?}"),
        }
    }
}

/// Every evaluation must be one Config accepts.
fn fits(e: Evaluation) -> Evaluation {
    if let Some(a) = &e.annotation {
        assert!(a.chars().count() <= MAX_ANNOTATION, "{a}");
    }
    e
}

fn sg(id: &str, compliance: &'static str, annotation: Option<&str>) -> Evaluation {
    Evaluation {
        resource_type: security_group::RESOURCE_TYPE.into(),
        resource_id: id.into(),
        compliance,
        annotation: annotation.map(str::to_string),
    }
}

#[test]
fn an_admin_port_open_to_the_world_is_named_and_only_it() {
    let r = recorded!("sg-admin-port-open.json");
    assert_eq!(r.rule, RuleKind::SgAdminPorts);
    // World-open 443, 5432 from a private range and 3306 from a group are not findings.
    assert_eq!(
        r.evaluate(),
        sg(
            "sg-0a1b2c3d4e5f60718",
            "NON_COMPLIANT",
            Some("open to the world: tcp 22 from 0.0.0.0/0")
        )
    );
    // The group's all-traffic egress to the world is not ingress.
    assert_eq!(
        r.evaluate_as(RuleKind::SgPrivilegedPorts).compliance,
        "COMPLIANT"
    );
}

#[test]
fn a_privileged_port_is_the_privileged_rules_finding_not_the_admin_rules() {
    let r = recorded!("sg-privileged-port-open.json");
    assert_eq!(r.rule, RuleKind::SgPrivilegedPorts);
    assert_eq!(
        r.evaluate(),
        sg(
            "sg-1b2c3d4e5f6071829",
            "NON_COMPLIANT",
            Some("open to the world: tcp 21 from 0.0.0.0/0, ::/0")
        )
    );
    assert_eq!(
        r.evaluate_as(RuleKind::SgAdminPorts),
        sg("sg-1b2c3d4e5f6071829", "COMPLIANT", None)
    );
}

#[test]
fn web_ports_open_to_the_world_break_neither_rule_by_default() {
    let r = recorded!("sg-web-ports-open.json");
    for rule in [RuleKind::SgAdminPorts, RuleKind::SgPrivilegedPorts] {
        assert_eq!(
            r.evaluate_as(rule),
            sg("sg-2c3d4e5f607182930", "COMPLIANT", None),
            "{}",
            rule.name()
        );
    }
}

#[test]
fn input_parameters_replace_the_default_ports() {
    let r = recorded!("sg-custom-ports.json");
    assert_eq!(
        r.rule.settings(&r.parameters).unwrap(),
        Settings::Ports(vec![22, 8080])
    );
    assert_eq!(
        r.evaluate().annotation.as_deref(),
        Some("open to the world: tcp 8080 from 0.0.0.0/0")
    );
    // Without the parameters, the same item breaks the rule on 3389 instead.
    let defaults = Recorded {
        parameters: BTreeMap::new(),
        ..r
    };
    assert_eq!(
        defaults.evaluate().annotation.as_deref(),
        Some("open to the world: tcp 3389 from 0.0.0.0/0")
    );
}

#[test]
fn a_deleted_group_and_one_out_of_scope_are_not_applicable() {
    for (recorded, id, captured) in [
        (
            recorded!("sg-deleted.json"),
            "sg-3d4e5f60718293a4b",
            "2026-03-02T10:02:11.640Z",
        ),
        // Still open on 22, but no longer the rule's business.
        (
            recorded!("sg-left-scope.json"),
            "sg-4e5f60718293a4b5c",
            "2026-03-02T10:15:30.250Z",
        ),
    ] {
        let gone = recorded.gone();
        assert_eq!(
            (gone.resource_id.as_str(), gone.captured_at.as_str()),
            (id, captured)
        );
        assert_eq!(
            Evaluation::not_applicable(&gone.resource_type, &gone.resource_id),
            sg(id, "NOT_APPLICABLE", None)
        );
    }
}

#[test]
fn an_oversized_item_names_its_resource_to_fetch() {
    let r = recorded!("sg-oversized.json");
    assert_eq!(
        r.trigger,
        Trigger::Oversized {
            resource: Resource {
                resource_type: security_group::RESOURCE_TYPE.into(),
                resource_id: "sg-5f60718293a4b5c6d".into(),
                captured_at: "2026-03-02T11:40:09.876Z".into(),
            }
        }
    );
}

#[test]
fn a_scheduled_security_group_run_evaluates_everything() {
    let r = recorded!("sg-scheduled.json");
    assert_eq!(r.rule, RuleKind::SgAdminPorts);
    assert_eq!(
        r.trigger,
        Trigger::Scheduled {
            at: "2026-03-02T18:00:00.215Z".into()
        }
    );
}

#[test]
fn a_scheduled_drift_run_evaluates_each_parameter_of_the_named_apps() {
    let r = recorded!("parameter-drift-scheduled.json");
    assert_eq!(r.rule, RuleKind::ParameterDrift);
    assert_eq!(
        r.trigger,
        Trigger::Scheduled {
            at: "2026-03-02T06:00:00.512Z".into()
        }
    );
    let Settings::Drift {
        apps,
        current_prefix,
        approved_prefix,
    } = r.rule.settings(&r.parameters).unwrap()
    else {
        panic!("the drift rule's settings");
    };
    assert_eq!(apps, ["payments"]);
    let p = |value: &str| Parameter {
        value: value.into(),
        kind: "String".into(),
    };
    let by_name = |items: &[(&str, &str)]| -> BTreeMap<String, Parameter> {
        items.iter().map(|(k, v)| (k.to_string(), p(v))).collect()
    };
    // One outcome per severity: drifted (MEDIUM), missing (HIGH), unauthorized (LOW).
    let current = by_name(&[("pool", "20"), ("timeout", "900"), ("debug", "true")]);
    let approved = by_name(&[("pool", "20"), ("timeout", "30"), ("region", "eu-west-1")]);
    let current_prefix = for_app(&current_prefix, &apps[0]);
    assert_eq!(for_app(&approved_prefix, &apps[0]), "/payments/approved/");
    let found =
        parameter_drift::evaluate(&current_prefix, &current, &approved, r.rule.resource_type());
    // A name reported before that neither side holds any more.
    let before = [(
        r.rule.resource_type().to_string(),
        "/payments/current/old".to_string(),
    )];
    let got: Vec<(String, &str, Option<String>)> = with_gone(found, &before)
        .into_iter()
        .map(fits)
        .map(|e| {
            assert_eq!(e.resource_type, "AWS::SSM::Parameter");
            (e.resource_id, e.compliance, e.annotation)
        })
        .collect();
    let want = |id: &str, c: &'static str, a: Option<&str>| {
        (format!("/payments/current/{id}"), c, a.map(str::to_string))
    };
    assert_eq!(
        got,
        [
            want("debug", "NON_COMPLIANT", Some(UNAUTHORIZED)),
            want("pool", "COMPLIANT", None),
            want("region", "NON_COMPLIANT", Some(MISSING)),
            want("timeout", "NON_COMPLIANT", Some(DRIFTED)),
            want("old", "NOT_APPLICABLE", None),
        ]
    );
}
