//! The chart's ValidatingAdmissionPolicy evaluated as the API server does, on
//! admission requests an agent makes: `matchConditions` first (no match: the policy
//! does not apply), then `variables` in order (each visible to the next as
//! `variables.<name>`), then each validation; the first that does not give `true`
//! (or fails to evaluate: `failurePolicy: Fail`) denies, with its message.
//!
//! CEL is the `cel` crate; the expressions use only standard CEL (`has`, `in`,
//! `size`, `all`, `exists`, `startsWith`), no Kubernetes library.

use cel::objects::{Key, Map};
use cel::{Context, Value as CelValue};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// What the policy says about a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// `matchConditions` do not match: the policy does not apply.
    NotMatched,
    Allowed,
    Denied(String),
}

/// Evaluates `policy` (a rendered ValidatingAdmissionPolicy) on an admission
/// request with `request`, `object` and `oldObject`.
pub fn admit(policy: &Value, request: &Value, object: &Value, old_object: &Value) -> Decision {
    let spec = &policy["spec"];
    let bindings: Vec<(&str, CelValue)> = vec![
        ("request", to_cel(request)),
        ("object", to_cel(object)),
        ("oldObject", to_cel(old_object)),
    ];
    for condition in spec["matchConditions"].as_array().into_iter().flatten() {
        let expression = condition["expression"].as_str().unwrap();
        match evaluate(expression, &bindings, &HashMap::new()) {
            Ok(CelValue::Bool(true)) => {}
            Ok(CelValue::Bool(false)) => return Decision::NotMatched,
            other => return Decision::Denied(format!("matchCondition error: {other:?}")),
        }
    }
    let mut variables = HashMap::new();
    for variable in spec["variables"].as_array().into_iter().flatten() {
        let name = variable["name"].as_str().unwrap();
        let expression = variable["expression"].as_str().unwrap();
        match evaluate(expression, &bindings, &variables) {
            Ok(value) => {
                variables.insert(name.to_string(), value);
            }
            Err(e) => return Decision::Denied(format!("variable {name}: {e}")),
        }
    }
    for validation in spec["validations"].as_array().into_iter().flatten() {
        let expression = validation["expression"].as_str().unwrap();
        match evaluate(expression, &bindings, &variables) {
            Ok(CelValue::Bool(true)) => {}
            Ok(CelValue::Bool(false)) => {
                let message = match validation["messageExpression"].as_str() {
                    Some(m) => match evaluate(m, &bindings, &variables) {
                        Ok(CelValue::String(s)) => s.to_string(),
                        other => panic!("messageExpression {m:?} gave {other:?}"),
                    },
                    None => validation["message"].as_str().unwrap().to_string(),
                };
                return Decision::Denied(message);
            }
            other => {
                return Decision::Denied(format!("evaluation of {expression:?}: {other:?}"));
            }
        }
    }
    Decision::Allowed
}

fn evaluate(
    expression: &str,
    bindings: &[(&str, CelValue)],
    variables: &HashMap<String, CelValue>,
) -> Result<CelValue, String> {
    let program = cel::Program::compile(expression)
        .map_err(|e| format!("{expression:?} does not compile: {e}"))?;
    let mut context = Context::default();
    for (name, value) in bindings {
        context.add_variable_from_value(*name, value.clone());
    }
    let variables: HashMap<Key, CelValue> = variables
        .iter()
        .map(|(k, v)| (Key::String(Arc::new(k.clone())), v.clone()))
        .collect();
    context.add_variable_from_value(
        "variables",
        CelValue::Map(Map {
            map: Arc::new(variables),
        }),
    );
    program.execute(&context).map_err(|e| e.to_string())
}

fn to_cel(value: &Value) -> CelValue {
    match value {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => CelValue::Int(i),
            None => CelValue::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => CelValue::String(Arc::new(s.clone())),
        Value::Array(items) => CelValue::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(map) => {
            let entries: HashMap<Key, CelValue> = map
                .iter()
                .map(|(k, v)| (Key::String(Arc::new(k.clone())), to_cel(v)))
                .collect();
            CelValue::Map(Map {
                map: Arc::new(entries),
            })
        }
    }
}
