//! The JSON bodies of `POST /init` and `POST /run`, as the invoker sends them.
//!
//! Every field the protocol allows to be missing or `null` is optional here;
//! see `docs/protocol.md` for the wire facts.

use crate::context::ActivationContext;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The entry point used when /init names none (or an empty one).
pub const DEFAULT_MAIN: &str = "main";

/// Body of `POST /init`: `{"value": {...}}`. `{}` is allowed (and refused
/// later with "Missing main/no code to execute.").
#[derive(Debug, Default, Deserialize)]
pub struct InitRequest {
    /// The action; `None` for `{}` or `{"value": null}`.
    #[serde(default, deserialize_with = "object_or_null")]
    pub value: Option<InitValue>,
}

/// Read `T` only from a JSON object (or `null`): serde's derived structs
/// would also accept an array, which the protocol never sends.
fn object_or_null<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    use serde::de::Error as _;
    Option::<Map<String, Value>>::deserialize(deserializer)?
        .map(|fields| serde_json::from_value(Value::Object(fields)).map_err(D::Error::custom))
        .transpose()
}

/// The `value` of an /init request.
#[derive(Debug, Default, Deserialize)]
pub struct InitValue {
    /// The action's name, informational.
    #[serde(default)]
    pub name: Option<String>,
    /// Entry point; `None` or `""` mean [`DEFAULT_MAIN`].
    #[serde(default)]
    pub main: Option<String>,
    /// True when `code` is base64 (a binary upload or a zip).
    #[serde(default)]
    pub binary: Option<bool>,
    /// The action's code: base64 of a `.wasm` or of a zip.
    #[serde(default)]
    pub code: Option<String>,
    /// Init-bound parameters and the cold-starting activation's `__OW_*`
    /// variables. Values are strings on the wire; other JSON values are kept
    /// as their JSON text, `null` as the empty string.
    #[serde(default)]
    pub env: Option<Map<String, Value>>,
}

impl InitValue {
    /// The entry point to call, defaulting to `main`.
    pub fn entry(&self) -> &str {
        match self.main.as_deref() {
            None | Some("") => DEFAULT_MAIN,
            Some(main) => main,
        }
    }

    /// The init `env` as strings (see [`InitValue::env`]).
    pub fn env_strings(&self) -> BTreeMap<String, String> {
        self.env
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), json_to_env_value(v)))
            .collect()
    }
}

fn json_to_env_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Body of `POST /run`: `value` plus the activation's metadata fields.
#[derive(Debug, Default, Deserialize)]
pub struct RunRequest {
    /// The parameters, as the JSON text they came in (checked by the
    /// parser, not built into a tree); missing or `null` mean `{}`.
    #[serde(default, deserialize_with = "checked_raw")]
    pub value: Option<Box<RawValue>>,
    /// Every other top-level field (`namespace`, `action_name`, `deadline`, ...).
    #[serde(flatten)]
    pub meta: Map<String, Value>,
}

impl RunRequest {
    /// Turn the request into the context an engine runs with.
    ///
    /// Every top-level string field except `value` becomes `__OW_<KEY>` in
    /// the action's environment, as the reference runtimes do.
    pub fn into_context(self, api_host: Option<String>) -> ActivationContext {
        let params = match self.value {
            None => Bytes::from_static(b"{}"),
            Some(raw) if raw.get() == "null" => Bytes::from_static(b"{}"),
            Some(raw) => match compact_json(raw.get()) {
                Some(compact) => Bytes::from(compact),
                None => Bytes::from(String::from(Box::<str>::from(raw))),
            },
        };
        let text = |key: &str| {
            self.meta
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let deadline_ms = match self.meta.get("deadline") {
            Some(Value::String(s)) => s.trim().parse().ok(),
            Some(Value::Number(n)) => n.as_u64(),
            _ => None,
        };
        let ow_env = self
            .meta
            .iter()
            .filter_map(|(k, v)| {
                v.as_str()
                    .map(|s| (format!("__OW_{}", k.to_uppercase()), s.to_owned()))
            })
            .collect();
        ActivationContext {
            namespace: text("namespace"),
            action_name: text("action_name"),
            action_version: text("action_version"),
            activation_id: text("activation_id"),
            transaction_id: text("transaction_id"),
            api_key: text("api_key"),
            deadline_ms,
            api_host,
            ow_env,
            params,
        }
    }
}

/// How deep JSON may nest: what serde_json's value parser allows (its
/// recursion limit of 128 refuses the 128th level), so the
/// executor refuses what a guest's parser would.
const MAX_DEPTH: usize = 127;

/// Read JSON text as it is, refusing what a JSON parser building values
/// would refuse: the raw reader skips nested values without a depth limit,
/// strings without decoding their `\u` escapes and numbers without their
/// range, so the text is scanned once for its depth and, with a surrogate
/// escape (a lone one is not Unicode) or a number that may not fit an `f64`
/// (an exponent, or 300 digits) in it, decoded once to check it.
fn checked_raw<'de, D>(deserializer: D) -> Result<Option<Box<RawValue>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::Error as _;
    let raw = Option::<Box<RawValue>>::deserialize(deserializer)?;
    if let Some(raw) = &raw {
        check_raw(raw.get()).map_err(D::Error::custom)?;
    }
    Ok(raw)
}

/// Refuse valid JSON text that a parser building values would refuse (see
/// [`checked_raw`]): its shape, with one scan.
fn check_raw(text: &str) -> Result<Shape, String> {
    let shape = Shape::of(text);
    if shape.depth > MAX_DEPTH {
        return Err(format!(
            "the parameters nest deeper than {MAX_DEPTH} levels"
        ));
    }
    if shape.surrogate_escape || shape.big_number {
        serde_json::from_str::<Value>(text).map_err(|e| e.to_string())?;
    }
    Ok(shape)
}

/// Params given as a JSON object's text (a function's invocation, a call
/// of one action by another), checked as /run checks `value`: the same
/// bytes when they are compact, else compacted onto one line.
///
/// # Errors
/// Why the text is not a JSON object the /run path would accept.
pub fn checked_params(params: Bytes) -> Result<Bytes, String> {
    let raw: &RawValue = serde_json::from_slice(&params).map_err(|e| e.to_string())?;
    if !raw.get().starts_with('{') {
        return Err("the parameters must be a JSON object".into());
    }
    let shape = check_raw(raw.get())?;
    if !shape.spaces && raw.get().len() == params.len() {
        return Ok(params);
    }
    Ok(Bytes::from(
        compact_json(raw.get()).unwrap_or_else(|| raw.get().to_owned()),
    ))
}

/// What one pass over valid JSON text finds.
#[derive(Debug, Default, PartialEq)]
struct Shape {
    /// Deepest nesting of arrays and objects.
    depth: usize,
    /// Whitespace between tokens.
    spaces: bool,
    /// A `\uD800`-`\uDFFF` escape in a string.
    surrogate_escape: bool,
    /// A number with an exponent, or of 300 digits or more.
    big_number: bool,
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\n' | b'\r' | b'\t')
}

impl Shape {
    fn of(text: &str) -> Self {
        let mut shape = Shape::default();
        let mut depth = 0usize;
        let mut digits = 0usize;
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let c = bytes[i];
            if c == b'"' {
                i = shape.skip_string(bytes, i + 1);
                digits = 0;
                continue;
            }
            let after_digit = digits > 0;
            digits = if c.is_ascii_digit() { digits + 1 } else { 0 };
            shape.big_number |= digits >= 300 || (after_digit && matches!(c, b'e' | b'E'));
            match c {
                b'[' | b'{' => {
                    depth += 1;
                    shape.depth = shape.depth.max(depth);
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                c if is_space(c) => shape.spaces = true,
                _ => {}
            }
            i += 1;
        }
        shape
    }

    /// Past the string whose contents start at `i`: its closing quote is
    /// found by `memchr2`, looking only at escapes on the way (a
    /// `\uD800`-`\uDFFF` one is noted), not at every byte.
    fn skip_string(&mut self, bytes: &[u8], mut i: usize) -> usize {
        while let Some(found) = bytes
            .get(i..)
            .and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
        {
            let at = i + found;
            if bytes[at] == b'"' {
                return at + 1;
            }
            if bytes.get(at + 1) == Some(&b'u') {
                let high = bytes.get(at + 2..at + 4).unwrap_or_default();
                self.surrogate_escape |=
                    matches!(high, [b'd' | b'D', b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F']);
            }
            // The escaped character, whatever it is.
            i = at + 2;
        }
        bytes.len()
    }
}

/// `text` (valid JSON) without whitespace between tokens, or `None` when
/// it has none: params reach the module on one line, as compact as a
/// serializer would write them.
fn compact_json(text: &str) -> Option<String> {
    if !text.as_bytes().iter().any(|&c| is_space(c)) || !Shape::of(text).spaces {
        return None;
    }
    let mut out = Vec::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for &c in text.as_bytes() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else if c == b'"' {
            in_string = true;
            out.push(c);
        } else if !is_space(c) {
            out.push(c);
        }
    }
    // Only ASCII whitespace outside strings was dropped: still UTF-8.
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn init_tolerates_missing_and_null_fields() {
        let empty: InitRequest = serde_json::from_str("{}").unwrap();
        assert!(empty.value.is_none());
        let nulls: InitRequest =
            serde_json::from_str(r#"{"value":{"code":"","main":"","binary":false,"env":null}}"#)
                .unwrap();
        let v = nulls.value.unwrap();
        assert_eq!(v.entry(), "main");
        assert!(v.env_strings().is_empty());
        let named: InitRequest = serde_json::from_str(
            r#"{"value":{"main":"niam","code":"AA==","binary":true,"env":{"A":"x","B":null,"C":3}}}"#,
        )
        .unwrap();
        let v = named.value.unwrap();
        assert_eq!(v.entry(), "niam");
        assert_eq!(
            v.env_strings(),
            [
                ("A".into(), "x".into()),
                ("B".into(), "".into()),
                ("C".into(), "3".into())
            ]
            .into()
        );
    }

    #[test]
    fn init_value_must_be_an_object() {
        assert!(serde_json::from_str::<InitRequest>(r#"{"value":[]}"#).is_err());
        assert!(serde_json::from_str::<InitRequest>(r#"{"value":"code"}"#).is_err());
        assert!(
            serde_json::from_str::<InitRequest>(r#"{"value":null}"#)
                .unwrap()
                .value
                .is_none()
        );
    }

    #[test]
    fn init_rejects_wrong_types() {
        assert!(serde_json::from_str::<InitRequest>(r#"{"value":{"main":5}}"#).is_err());
        assert!(serde_json::from_str::<InitRequest>(r#"{"value":{"env":"x"}}"#).is_err());
    }

    #[test]
    fn run_maps_string_fields_to_ow_env() {
        let req: RunRequest = serde_json::from_value(json!({
            "value": {"a": 1},
            "namespace": "guest",
            "action_name": "/guest/act",
            "activation_id": "abc",
            "deadline": "1712345678901",
            "api_key": "k:s",
            "not_a_string": 7
        }))
        .unwrap();
        let ctx = req.into_context(Some("https://host".into()));
        assert_eq!(&ctx.params[..], br#"{"a":1}"#);
        assert_eq!(ctx.namespace.as_deref(), Some("guest"));
        assert_eq!(ctx.deadline_ms, Some(1712345678901));
        assert_eq!(ctx.ow_env["__OW_ACTION_NAME"], "/guest/act");
        assert_eq!(ctx.ow_env["__OW_DEADLINE"], "1712345678901");
        assert_eq!(ctx.ow_env["__OW_API_KEY"], "k:s");
        assert!(!ctx.ow_env.contains_key("__OW_NOT_A_STRING"));
        assert!(!ctx.ow_env.contains_key("__OW_VALUE"));
        assert_eq!(ctx.api_host.as_deref(), Some("https://host"));
    }

    #[test]
    fn run_without_value_means_empty_object_and_arrays_pass_through() {
        let req: RunRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(&req.into_context(None).params[..], b"{}");
        let req: RunRequest = serde_json::from_str(r#"{"value":null}"#).unwrap();
        assert_eq!(&req.into_context(None).params[..], b"{}");
        let req: RunRequest = serde_json::from_str(r#"{"value":[1,2]}"#).unwrap();
        assert_eq!(&req.into_context(None).params[..], b"[1,2]");
    }

    #[test]
    fn params_nested_deeper_than_a_value_parser_allows_are_refused() {
        let nested = |n: usize| format!(r#"{{"value":{}{}}}"#, "[".repeat(n), "]".repeat(n));
        let deepest = serde_json::from_str::<RunRequest>(&nested(MAX_DEPTH)).unwrap();
        let params = deepest.into_context(None).params;
        assert!(serde_json::from_slice::<Value>(&params).is_ok());
        assert!(serde_json::from_str::<RunRequest>(&nested(MAX_DEPTH + 1)).is_err());
        // Brackets inside strings do not count.
        let text = format!(r#"{{"value":{{"s":"{}"}}}}"#, "[".repeat(500));
        assert!(serde_json::from_str::<RunRequest>(&text).is_ok());
    }

    #[test]
    fn params_with_a_number_out_of_range_are_refused() {
        assert!(serde_json::from_str::<RunRequest>(r#"{"value":{"n":1e531}}"#).is_err());
        let long = format!(r#"{{"value":{{"n":{}}}}}"#, "9".repeat(400));
        assert!(serde_json::from_str::<RunRequest>(&long).is_err());
        let fine: RunRequest =
            serde_json::from_str(r#"{"value":{"n":1.5e3,"t":true,"f":false}}"#).unwrap();
        assert_eq!(
            &fine.into_context(None).params[..],
            br#"{"n":1.5e3,"t":true,"f":false}"#
        );
    }

    #[test]
    fn params_with_a_lone_surrogate_are_refused_and_a_pair_accepted() {
        assert!(serde_json::from_str::<RunRequest>(r#"{"value":{"s":"\ud800"}}"#).is_err());
        let req: RunRequest = serde_json::from_str(r#"{"value":{"s":"\ud83d\ude00"}}"#).unwrap();
        assert_eq!(
            &req.into_context(None).params[..],
            br#"{"s":"\ud83d\ude00"}"#
        );
    }

    #[test]
    fn params_are_forwarded_compact_on_one_line_with_strings_untouched() {
        let body = "{\"value\": {\n  \"a\" : [1, 2],\n\t\"s\": \"x \\\" y\\n\"\r\n}, \"namespace\": \"ns\"}";
        let req: RunRequest = serde_json::from_str(body).unwrap();
        let params = req.into_context(None).params;
        assert_eq!(
            std::str::from_utf8(&params).unwrap(),
            r#"{"a":[1,2],"s":"x \" y\n"}"#
        );
        let parsed: Value = serde_json::from_slice(&params).unwrap();
        assert_eq!(parsed, json!({"a": [1, 2], "s": "x \" y\n"}));
    }
}
