//! The varlink wire format: one JSON object per message, each terminated by a NUL byte, on
//! a Unix stream socket. A call is `{"method": "iface.Method", "parameters": {...}, "more":
//! bool, "oneway": bool}`; a reply is `{"parameters": {...}}`, `{"error": "iface.Name",
//! "parameters": {...}}`, with `"continues": true` on every reply but the last of a `more`
//! call.
//!
//! Everything here is pure (bytes in, values out), so the message parser can be fuzzed
//! without a socket (fuzz target `varlink_message`).

use serde_json::{Map, Value};

/// The standard errors of `org.varlink.service`, and those of `org.openSUSE.wtmpdb`: named
/// once, in the core, for the daemon and its clients.
pub use wtmpdb::interface::service::{
    INTERFACE_NOT_FOUND, INVALID_PARAMETER, METHOD_NOT_FOUND, METHOD_NOT_IMPLEMENTED,
    PERMISSION_DENIED,
};
pub use wtmpdb::interface::{INTERNAL_ERROR, NO_ENTRY_FOUND};

/// A decoded call.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// The fully qualified method, e.g. `org.openSUSE.wtmpdb.Login`.
    pub method: String,
    pub parameters: Map<String, Value>,
    /// The client accepts several replies (`continues`).
    pub more: bool,
    /// The client wants no reply at all.
    pub oneway: bool,
    /// The client asks to leave varlink for another protocol (refused: we speak only varlink).
    pub upgrade: bool,
}

impl Call {
    /// The interface part of the method name (everything before the last dot).
    pub fn interface(&self) -> &str {
        self.method.rsplit_once('.').map_or("", |(i, _)| i)
    }

    /// The method's own name (after the last dot).
    pub fn name(&self) -> &str {
        self.method
            .rsplit_once('.')
            .map_or(&self.method, |(_, m)| m)
    }
}

/// A reply to send: an error name (None for success) and its parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub error: Option<&'static str>,
    pub parameters: Map<String, Value>,
    pub continues: bool,
}

impl Reply {
    pub fn ok(parameters: Map<String, Value>) -> Reply {
        Reply {
            error: None,
            parameters,
            continues: false,
        }
    }

    pub fn error(name: &'static str, parameters: Map<String, Value>) -> Reply {
        Reply {
            error: Some(name),
            parameters,
            continues: false,
        }
    }

    /// `org.varlink.service.InvalidParameter` naming `parameter`, with an explanation.
    pub fn invalid(parameter: &str, why: impl Into<String>) -> Reply {
        let mut p = Map::new();
        p.insert("parameter".into(), parameter.into());
        p.insert("ErrorMsg".into(), why.into().into());
        Reply::error(INVALID_PARAMETER, p)
    }

    /// The message bytes, NUL terminator included.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        encode_into(&mut out, self.error, &self.parameters, self.continues);
        out
    }
}

/// Appends one reply message (NUL included) to `out`.
pub fn encode_into(
    out: &mut Vec<u8>,
    error: Option<&str>,
    parameters: &Map<String, Value>,
    continues: bool,
) {
    out.push(b'{');
    if let Some(e) = error {
        out.extend_from_slice(b"\"error\":");
        // Error names are our own constants; still written as JSON strings.
        serde_json::to_writer(&mut *out, e).expect("writing to a Vec cannot fail");
        out.push(b',');
    }
    out.extend_from_slice(b"\"parameters\":");
    serde_json::to_writer(&mut *out, parameters).expect("writing to a Vec cannot fail");
    if continues {
        out.extend_from_slice(b",\"continues\":true");
    }
    out.push(b'}');
    out.push(0);
}

/// Why a message is not a call. Each reads as the explanation of an InvalidParameter
/// reply; the connection carries on (the NUL framing is intact).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BadMessage {
    /// Not UTF-8 JSON, or not one JSON value.
    Json(String),
    NotAnObject,
    /// A member of the call has the wrong type, or `method` is missing.
    Field {
        field: &'static str,
        why: &'static str,
    },
}

impl BadMessage {
    /// The parameter an InvalidParameter reply names.
    pub fn parameter(&self) -> &'static str {
        match self {
            BadMessage::Json(_) | BadMessage::NotAnObject => "",
            BadMessage::Field { field, .. } => field,
        }
    }
}

impl std::fmt::Display for BadMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadMessage::Json(e) => write!(f, "The message is not valid JSON: {e}"),
            BadMessage::NotAnObject => write!(f, "The message is not a JSON object"),
            BadMessage::Field { field, why } => write!(f, "The call's '{field}' {why}"),
        }
    }
}

/// Decodes one message (without its NUL).
pub fn parse_call(bytes: &[u8]) -> Result<Call, BadMessage> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| BadMessage::Json(e.to_string()))?;
    let Value::Object(mut obj) = value else {
        return Err(BadMessage::NotAnObject);
    };
    let method = match obj.remove("method") {
        Some(Value::String(m)) if valid_method(&m) => m,
        Some(Value::String(_)) => {
            return Err(BadMessage::Field {
                field: "method",
                why: "is not a qualified method name (interface.Method)",
            });
        }
        Some(_) => {
            return Err(BadMessage::Field {
                field: "method",
                why: "is not a string",
            });
        }
        None => {
            return Err(BadMessage::Field {
                field: "method",
                why: "is missing",
            });
        }
    };
    let parameters = match obj.remove("parameters") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(p)) => p,
        Some(_) => {
            return Err(BadMessage::Field {
                field: "parameters",
                why: "is not an object",
            });
        }
    };
    let flag = |obj: &mut Map<String, Value>, field: &'static str| match obj.remove(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(b),
        Some(_) => Err(BadMessage::Field {
            field,
            why: "is not a boolean",
        }),
    };
    let more = flag(&mut obj, "more")?;
    let oneway = flag(&mut obj, "oneway")?;
    let upgrade = flag(&mut obj, "upgrade")?;
    Ok(Call {
        method,
        parameters,
        more,
        oneway,
        upgrade,
    })
}

/// `interface.Method`: a dotted interface name and a method name starting upper-case, ASCII.
fn valid_method(m: &str) -> bool {
    let Some((iface, name)) = m.rsplit_once('.') else {
        return false;
    };
    !iface.is_empty()
        && iface
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && name.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
        && name.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Typed access to a call's parameters: each getter answers the InvalidParameter reply for
/// a missing or mistyped value, naming it.
pub struct Params<'a> {
    map: &'a Map<String, Value>,
    /// The longest string accepted for any parameter.
    max_string: usize,
}

impl<'a> Params<'a> {
    pub fn new(map: &'a Map<String, Value>, max_string: usize) -> Params<'a> {
        Params { map, max_string }
    }

    /// Rejects parameters the method does not have (a typo should not pass as "unset").
    pub fn only(&self, known: &[&str]) -> Result<(), Reply> {
        match self.map.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(Reply::invalid(k, format!("Unknown parameter '{k}'"))),
            None => Ok(()),
        }
    }

    /// An optional 64-bit integer (absent and null are the same).
    pub fn opt_int(&self, name: &str) -> Result<Option<i64>, Reply> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(v) => Ok(Some(v)),
                None => Err(Reply::invalid(
                    name,
                    format!("'{name}' is not a 64-bit integer: {n}"),
                )),
            },
            Some(_) => Err(Reply::invalid(name, format!("'{name}' is not an integer"))),
        }
    }

    pub fn int(&self, name: &str) -> Result<i64, Reply> {
        self.opt_int(name)?
            .ok_or_else(|| Reply::invalid(name, format!("'{name}' is missing")))
    }

    pub fn opt_str(&self, name: &str) -> Result<Option<&'a str>, Reply> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.len() > self.max_string => Err(Reply::invalid(
                name,
                format!(
                    "'{name}' is {} bytes long, more than the {} accepted",
                    s.len(),
                    self.max_string
                ),
            )),
            Some(Value::String(s)) if s.contains('\0') => Err(Reply::invalid(
                name,
                format!("'{name}' contains a NUL character"),
            )),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Reply::invalid(name, format!("'{name}' is not a string"))),
        }
    }

    pub fn str(&self, name: &str) -> Result<&'a str, Reply> {
        self.opt_str(name)?
            .ok_or_else(|| Reply::invalid(name, format!("'{name}' is missing")))
    }
}

/// Builds a parameter map from pairs.
#[macro_export]
macro_rules! params {
    ($($k:expr => $v:expr),* $(,)?) => {{
        #[allow(unused_mut)]
        let mut m = serde_json::Map::new();
        $( m.insert(String::from($k), serde_json::Value::from($v)); )*
        m
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_decodes_with_its_flags() {
        let c = parse_call(br#"{"method":"org.openSUSE.wtmpdb.Ping","more":true}"#).unwrap();
        assert_eq!(c.interface(), "org.openSUSE.wtmpdb");
        assert_eq!(c.name(), "Ping");
        assert!(c.more && !c.oneway);
        assert!(c.parameters.is_empty());
    }

    #[test]
    fn bad_messages_name_what_is_wrong() {
        assert!(matches!(parse_call(b"{"), Err(BadMessage::Json(_))));
        assert_eq!(parse_call(b"[1]"), Err(BadMessage::NotAnObject));
        let e = parse_call(br#"{"method":1}"#).unwrap_err();
        assert_eq!(e.parameter(), "method");
        let e = parse_call(br#"{"method":"Ping"}"#).unwrap_err();
        assert_eq!(e.parameter(), "method");
        let e = parse_call(br#"{"method":"a.B","parameters":[]}"#).unwrap_err();
        assert_eq!(e.parameter(), "parameters");
        let e = parse_call(br#"{"method":"a.B","more":"yes"}"#).unwrap_err();
        assert_eq!(e.parameter(), "more");
        assert!(parse_call(b"\xff").is_err());
    }

    #[test]
    fn parameters_are_typed_and_bounded() {
        let m = params!("ID" => 1.5, "Big" => u64::MAX, "S" => "x".repeat(10), "N" => Value::Null);
        let p = Params::new(&m, 5);
        assert!(p.int("ID").is_err());
        assert!(p.int("Big").is_err());
        assert!(p.int("Missing").is_err());
        assert_eq!(p.opt_int("N").unwrap(), None);
        let e = p.str("S").unwrap_err();
        assert_eq!(e.error, Some(INVALID_PARAMETER));
        assert_eq!(e.parameters["parameter"], "S");
        assert!(p.only(&["ID", "Big", "S"]).is_err());
    }

    #[test]
    fn replies_encode_with_a_nul() {
        let r = Reply {
            error: None,
            parameters: params!("ID" => i64::MAX, "Logout" => Value::Null),
            continues: true,
        };
        let bytes = r.encode();
        assert_eq!(bytes.last(), Some(&0));
        let v: Value = serde_json::from_slice(&bytes[..bytes.len() - 1]).unwrap();
        assert_eq!(v["parameters"]["ID"], i64::MAX);
        assert!(v["parameters"]["Logout"].is_null());
        assert_eq!(v["continues"], true);
    }
}
