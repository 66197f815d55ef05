//! Evaluates the `x-kubernetes-validations` rules of a structural schema on an object,
//! as the API server does: each rule runs with `self` bound to the value at its node
//! (for every value present there: each list item, each map value), and a rule that
//! does not give `true` (or fails to evaluate) reports its message at its node's path
//! (plus its `fieldPath`).
//!
//! CEL is the `cel` crate. Kubernetes adds libraries to CEL; the rules use its CIDR
//! library, which `cel` lacks, so the functions they call are registered here with the
//! semantics of `k8s.io/apiserver/pkg/cel/library/cidr.go`:
//! - `isCIDR(string) bool`, `cidr(string) net.CIDR`: `netip.ParsePrefix` (an address,
//!   `/`, a decimal prefix length without sign or leading zero, at most 32 or 128; host
//!   bits may be set), refusing IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4/120`);
//!   `cidr` of anything else is an error;
//! - `<cidr>.containsCIDR(<cidr or string>) bool`: same family, `other` at least as long
//!   a prefix, and both equal when masked to the shorter prefix (the corrected version
//!   of kubernetes#130450, Kubernetes 1.33 and later);
//! - `<cidr>.prefixLength() int`.
//!
//! Address syntax is Rust's `IpAddr` parser, which agrees with Go's `netip.ParseAddr`
//! on the forms the tests use (dotted quads without leading zeros, IPv6 with `::`, no
//! zones).

use cel::extractors::This;
use cel::objects::{Key, Map, Opaque};
use cel::{Context, Env, ExecutionError, Value as CelValue};
use serde_json::Value;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// A rule that did not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Where, as `spec.egress[0].to[1].except`.
    pub path: String,
    pub message: String,
}

/// Every violated rule of `schema` on `object`, in schema order.
pub fn validate(schema: &Value, object: &Value) -> Vec<Violation> {
    let env = Arc::new(Env::stdlib());
    let mut violations = Vec::new();
    walk(&env, schema, object, "", &mut violations);
    violations
}

fn walk(env: &Arc<Env>, schema: &Value, value: &Value, path: &str, out: &mut Vec<Violation>) {
    for rule in schema["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let source = rule["rule"].as_str().expect("a rule has a rule");
        let message = rule["message"].as_str().unwrap_or(source);
        let at = format!("{path}{}", rule["fieldPath"].as_str().unwrap_or(""));
        match evaluate(env, source, value) {
            Ok(true) => {}
            Ok(false) => out.push(Violation {
                path: at,
                message: message.to_string(),
            }),
            Err(error) => out.push(Violation {
                path: at,
                message: format!("{message} (evaluation error: {error})"),
            }),
        }
    }
    match value {
        Value::Object(map) => {
            if let Some(properties) = schema["properties"].as_object() {
                for (name, property) in properties {
                    if let Some(child) = map.get(name) {
                        let child_path = if path.is_empty() {
                            name.clone()
                        } else {
                            format!("{path}.{name}")
                        };
                        walk(env, property, child, &child_path, out);
                    }
                }
            } else if schema["additionalProperties"].is_object() {
                for (key, child) in map {
                    let child_path = format!("{path}[{key:?}]");
                    walk(
                        env,
                        &schema["additionalProperties"],
                        child,
                        &child_path,
                        out,
                    );
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(env, &schema["items"], item, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Evaluates one rule with `self` bound to `value`.
pub fn evaluate(env: &Arc<Env>, rule: &str, value: &Value) -> Result<bool, String> {
    let program = env
        .compile(rule)
        .map_err(|e| format!("does not compile: {e}"))?;
    let mut context = Context::with_env(env.clone());
    context.add_variable_from_value("self", to_cel(value));
    register_cidr_library(&mut context);
    match program.execute(&context) {
        Ok(CelValue::Bool(holds)) => Ok(holds),
        Ok(other) => Err(format!("gave {other:?}, not a bool")),
        Err(error) => Err(error.to_string()),
    }
}

/// JSON -> CEL as Kubernetes maps a structural schema's values: integers are `int`.
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

/// A `net.CIDR` value: an address (host bits kept) and a prefix length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeCidr {
    address: IpAddr,
    bits: u8,
}

impl Opaque for KubeCidr {
    fn runtime_type_name(&self) -> &str {
        "net.CIDR"
    }
}

/// `parseCIDR` of cidr.go: `netip.ParsePrefix`, then no IPv4-mapped IPv6 address.
pub fn parse_cidr(raw: &str) -> Result<KubeCidr, String> {
    let (address, bits) = raw
        .rsplit_once('/')
        .ok_or_else(|| format!("netip.ParsePrefix({raw:?}): no '/'"))?;
    let address: IpAddr = address
        .parse()
        .map_err(|_| format!("netip.ParsePrefix({raw:?}): bad address"))?;
    // ParsePrefix refuses a sign and leading zeros, which Atoi would take.
    if bits.len() > 1 && !bits.starts_with(|c: char| ('1'..='9').contains(&c)) {
        return Err(format!("netip.ParsePrefix({raw:?}): bad bits after slash"));
    }
    let bits: u8 = bits
        .parse()
        .map_err(|_| format!("netip.ParsePrefix({raw:?}): bad bits after slash"))?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    if bits > max {
        return Err(format!(
            "netip.ParsePrefix({raw:?}): prefix length out of range"
        ));
    }
    if let IpAddr::V6(v6) = address
        && v6.to_ipv4_mapped().is_some()
    {
        return Err(format!("IPv4-mapped IPv6 address {raw:?} is not allowed"));
    }
    Ok(KubeCidr { address, bits })
}

/// The address with every bit after the first `bits` cleared, as a number.
fn masked(address: IpAddr, bits: u8) -> u128 {
    let (value, width) = match address {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    };
    let host_bits = width - u32::from(bits);
    if host_bits >= 128 {
        0
    } else {
        value >> host_bits << host_bits
    }
}

/// `cidrContainsCIDR` of cidr.go (as corrected by kubernetes#130450).
pub fn contains_cidr(outer: &KubeCidr, inner: &KubeCidr) -> bool {
    outer.address.is_ipv4() == inner.address.is_ipv4()
        && outer.bits <= inner.bits
        && masked(outer.address, outer.bits) == masked(inner.address, outer.bits)
}

fn cidr_of(value: &CelValue, function: &str) -> Result<KubeCidr, ExecutionError> {
    match value {
        CelValue::String(text) => {
            parse_cidr(text).map_err(|e| ExecutionError::function_error(function, e))
        }
        CelValue::Opaque(opaque) => opaque
            .downcast_ref::<KubeCidr>()
            .cloned()
            .ok_or_else(|| ExecutionError::function_error(function, "not a net.CIDR")),
        other => Err(ExecutionError::function_error(
            function,
            format!("no such overload for {other:?}"),
        )),
    }
}

fn register_cidr_library(context: &mut Context) {
    context
        .add_function("isCIDR", |text: Arc<String>| parse_cidr(&text).is_ok())
        .expect("isCIDR is not a standard function");
    context
        .add_function(
            "cidr",
            |text: Arc<String>| -> Result<CelValue, ExecutionError> {
                let cidr = parse_cidr(&text).map_err(|e| {
                    ExecutionError::function_error(
                        "cidr",
                        format!("network address parse error during conversion from string: {e}"),
                    )
                })?;
                Ok(CelValue::Opaque(Arc::new(cidr)))
            },
        )
        .expect("cidr is not a standard function");
    context
        .add_function(
            "containsCIDR",
            |This(this): This<CelValue>, other: CelValue| -> Result<bool, ExecutionError> {
                let outer = cidr_of(&this, "containsCIDR")?;
                let inner = cidr_of(&other, "containsCIDR")?;
                Ok(contains_cidr(&outer, &inner))
            },
        )
        .expect("containsCIDR is not a standard function");
    context
        .add_function(
            "prefixLength",
            |This(this): This<CelValue>| -> Result<i64, ExecutionError> {
                Ok(i64::from(cidr_of(&this, "prefixLength")?.bits))
            },
        )
        .expect("prefixLength is not a standard function");
}
