//! The `soap` filter's config as written in TOML, and its compilation into a filter.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use http::{HeaderValue, Method, StatusCode};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::filter::{FaultAnswer, SoapFilter};
use super::mapping::{Field, Mapping, Scalar, Shape};
use super::path::ElementPath;
use super::template::Template;
use super::xml::{SOAP11_ENVELOPE, SOAP12_ENVELOPE};
use crate::{BuildContext, BuildError, Filter};

/// Config of the `soap` filter.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SoapConfig {
    /// `"1.1"` (the default) or `"1.2"`: the envelope, Content-Type and action header sent.
    #[serde(default)]
    pub version: SoapVersion,
    /// The operation's action: SOAP 1.1's `SOAPAction` header, SOAP 1.2's `action`
    /// Content-Type parameter. Empty by default (an empty quoted `SOAPAction` in 1.1).
    #[serde(default)]
    pub action: String,
    /// The method sent to the core (default `POST`).
    #[serde(default = "default_method")]
    pub method: String,
    /// The path (and query, if any) sent to the core, e.g. `/soap/accounts`.
    pub path: String,
    /// Prefix → namespace URI, for the templates and the response paths. Every prefix is
    /// declared on the envelope sent; answers are matched by URI whatever their prefixes.
    #[serde(default)]
    pub namespaces: BTreeMap<String, String>,
    /// The content of the SOAP Body: XML with `${source:name}` placeholders in text and
    /// attribute values (see [`super`] and the README for the sources).
    pub request: String,
    /// The content of a SOAP Header, same syntax as `request`; no Header when unset.
    #[serde(default)]
    pub soap_header: Option<String>,
    /// How the answer's Body becomes JSON; unset: the generic mapping of the Body's first
    /// element.
    #[serde(default)]
    pub response: Option<ResponseConfig>,
    /// Fault code (local name, any namespace) → the answer for it.
    #[serde(default)]
    pub faults: BTreeMap<String, FaultMapping>,
    /// The status of a Client (1.1) or Sender (1.2) fault that `faults` does not map.
    #[serde(default = "default_client_status")]
    pub default_client_status: u16,
    /// Whether a 4xx answer to a fault may carry the core's faultstring (SOAP 1.2: Reason)
    /// as its detail when `faults` gives none. Off: the core's words never reach partners.
    #[serde(default)]
    pub expose_fault_string: bool,
    /// The largest answer read, once decompressed, and the largest JSON made from it.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: u64,
}

/// The SOAP version spoken to the core.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum SoapVersion {
    #[default]
    #[serde(rename = "1.1")]
    V1_1,
    #[serde(rename = "1.2")]
    V1_2,
}

impl SoapVersion {
    /// The envelope's namespace URI.
    pub(crate) fn namespace(self) -> &'static str {
        match self {
            SoapVersion::V1_1 => SOAP11_ENVELOPE,
            SoapVersion::V1_2 => SOAP12_ENVELOPE,
        }
    }
}

/// `[response]`: where the answer is in the Body, and which JSON members it gives.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ResponseConfig {
    /// Element path from the Body, e.g. `acc:GetBalanceResponse/acc:balance` (a leading `/`
    /// is allowed). Default: the Body's first element.
    #[serde(default)]
    pub root: Option<String>,
    /// JSON member → where its value is, relative to the root. Unset: the generic mapping
    /// of the root.
    #[serde(default)]
    pub fields: Option<Fields>,
}

/// JSON members in the order written, each with where its value is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields(pub Vec<(String, FieldConfig)>);

/// One member: a path (a string, for a string value) or a table.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldConfig {
    Path(String),
    Spec(FieldSpec),
}

/// `{ path = "acc:available", type = "number" }`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// Element path relative to the enclosing element; `@name` as the last step picks an
    /// attribute, `.` is the enclosing element itself.
    pub path: String,
    /// Default: `object` when `fields` is set, else `string`.
    #[serde(rename = "type", default)]
    pub kind: Option<FieldType>,
    /// For `type = "array"` without `fields`: the type of each item (default `string`).
    #[serde(default)]
    pub items: Option<FieldType>,
    /// For `object`, and for an `array` of objects: the members, relative to the element.
    #[serde(default)]
    pub fields: Option<Fields>,
}

/// The JSON type of a member.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    String,
    Number,
    Boolean,
    Object,
    Array,
    /// The element as the generic XML → JSON mapping gives it.
    Generic,
}

/// `{ status = 404, detail = "No such account" }`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultMapping {
    /// 400 to 599.
    pub status: u16,
    /// The problem's detail; none by default.
    #[serde(default)]
    pub detail: Option<String>,
}

fn default_method() -> String {
    "POST".to_owned()
}

fn default_client_status() -> u16 {
    400
}

fn default_max_response_bytes() -> u64 {
    1024 * 1024
}

/// The longest `detail` a fault mapping may set.
const MAX_DETAIL_CHARS: usize = 500;

impl SoapConfig {
    pub fn build(&self, _ctx: &BuildContext) -> Result<Arc<dyn Filter>, BuildError> {
        // Every option is checked, so one `corridor check` lists every mistake.
        let mut errors = Vec::new();
        let namespaces = keep(&mut errors, self.check_namespaces());
        let method = keep(
            &mut errors,
            Method::from_bytes(self.method.as_bytes())
                .map_err(|_| format!("method: {:?} is not an HTTP method", self.method)),
        );
        let target = keep(&mut errors, self.target());
        let headers = keep(&mut errors, self.headers());
        let template = keep(
            &mut errors,
            Template::envelope(
                self.version,
                &self.namespaces,
                self.soap_header.as_deref(),
                &self.request,
            ),
        );
        let mapping = keep(&mut errors, self.mapping());
        let faults = keep(&mut errors, self.faults());
        let client_status = keep(
            &mut errors,
            match self.default_client_status {
                status @ 400..=499 => Ok(StatusCode::from_u16(status).expect("a 4xx status")),
                other => Err(format!(
                    "default_client_status: {other} is not a 4xx status"
                )),
            },
        );
        if self.max_response_bytes == 0 {
            errors.push("max_response_bytes: must be above 0".to_owned());
        }
        let (
            Some(()),
            Some(method),
            Some(target),
            Some(headers),
            Some(template),
            Some(mapping),
            Some(faults),
            Some(client_status),
        ) = (
            namespaces,
            method,
            target,
            headers,
            template,
            mapping,
            faults,
            client_status,
        )
        else {
            return Err(BuildError(errors.join("; ")));
        };
        if !errors.is_empty() {
            return Err(BuildError(errors.join("; ")));
        }
        Ok(Arc::new(SoapFilter {
            method,
            target,
            headers,
            template,
            mapping,
            faults,
            client_status,
            expose_fault_string: self.expose_fault_string,
            max_response_bytes: self.max_response_bytes,
        }))
    }

    fn check_namespaces(&self) -> Result<(), String> {
        for (prefix, uri) in &self.namespaces {
            if !is_ncname(prefix) || prefix.to_ascii_lowercase().starts_with("xml") {
                return Err(format!(
                    "namespaces: {prefix:?} is not a usable prefix (letters, digits, `-`, `_`, \
                     `.`, not starting with a digit or `xml`)"
                ));
            }
            if prefix == "soap" {
                return Err("namespaces: the prefix \"soap\" is the envelope's own".to_owned());
            }
            if uri.is_empty() || uri.chars().any(|c| c.is_control()) {
                return Err(format!(
                    "namespaces: {prefix}: the URI is empty or has control characters"
                ));
            }
        }
        Ok(())
    }

    fn target(&self) -> Result<http::uri::PathAndQuery, String> {
        if !self.path.starts_with('/') {
            return Err(format!("path: {:?} does not start with `/`", self.path));
        }
        self.path
            .parse()
            .map_err(|_| format!("path: {:?} is not a valid path and query", self.path))
    }

    fn headers(&self) -> Result<SoapHeaders, String> {
        // Quotes and backslashes would need escaping inside the quoted header parameter.
        if !self
            .action
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        {
            return Err(format!(
                "action: {:?} must be visible ASCII without `\"` or `\\`",
                self.action
            ));
        }
        let value = |text: String| HeaderValue::try_from(text).expect("visible ASCII");
        Ok(match self.version {
            SoapVersion::V1_1 => SoapHeaders {
                content_type: HeaderValue::from_static("text/xml; charset=utf-8"),
                soap_action: Some(value(format!("\"{}\"", self.action))),
                accept: HeaderValue::from_static("text/xml"),
            },
            SoapVersion::V1_2 => SoapHeaders {
                content_type: if self.action.is_empty() {
                    HeaderValue::from_static("application/soap+xml; charset=utf-8")
                } else {
                    value(format!(
                        "application/soap+xml; charset=utf-8; action=\"{}\"",
                        self.action
                    ))
                },
                soap_action: None,
                accept: HeaderValue::from_static("application/soap+xml"),
            },
        })
    }

    fn mapping(&self) -> Result<Mapping, String> {
        let Some(response) = &self.response else {
            return Ok(Mapping {
                root: None,
                shape: Shape::Generic,
            });
        };
        let root = response
            .root
            .as_deref()
            .map(|root| {
                let path = ElementPath::compile(root.strip_prefix('/').unwrap_or(root), self)
                    .map_err(|e| format!("response.root: {e}"))?;
                if path.ends_in_attribute() || path.is_current() {
                    return Err("response.root: must name an element".to_owned());
                }
                Ok(path)
            })
            .transpose();
        let shape = match &response.fields {
            Some(fields) => compile_fields(fields, "response.fields", self).map(Shape::Object),
            None if response.root.is_none() => {
                Err("response: set root, fields or both (or leave response out)".to_owned())
            }
            None => Ok(Shape::Generic),
        };
        match (root, shape) {
            (Ok(root), Ok(shape)) => Ok(Mapping { root, shape }),
            (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e),
            (Err(a), Err(b)) => Err(format!("{a}; {b}")),
        }
    }

    fn faults(&self) -> Result<BTreeMap<String, FaultAnswer>, String> {
        let mut built = BTreeMap::new();
        for (code, mapping) in &self.faults {
            let at = format!("faults.{code}");
            if !is_ncname(code) {
                return Err(format!(
                    "{at}: name a fault code by its local name (e.g. AccountNotFound)"
                ));
            }
            let status = match StatusCode::from_u16(mapping.status) {
                Ok(status) if (400..=599).contains(&mapping.status) => status,
                _ => return Err(format!("{at}: status {} is not 4xx or 5xx", mapping.status)),
            };
            if let Some(detail) = &mapping.detail {
                if detail.chars().count() > MAX_DETAIL_CHARS {
                    return Err(format!(
                        "{at}: detail is over {MAX_DETAIL_CHARS} characters"
                    ));
                }
            }
            built.insert(
                code.clone(),
                FaultAnswer {
                    status,
                    detail: mapping.detail.clone(),
                },
            );
        }
        Ok(built)
    }
}

/// The value of `result`, or None with its error added to `errors`.
fn keep<T>(errors: &mut Vec<String>, result: Result<T, String>) -> Option<T> {
    result.map_err(|e| errors.push(e)).ok()
}

/// The headers every request to the core gets.
#[derive(Debug)]
pub(crate) struct SoapHeaders {
    pub content_type: HeaderValue,
    /// SOAP 1.1 only.
    pub soap_action: Option<HeaderValue>,
    pub accept: HeaderValue,
}

/// Members, each compiled; `at` names the table in errors.
fn compile_fields(fields: &Fields, at: &str, config: &SoapConfig) -> Result<Vec<Field>, String> {
    if fields.0.is_empty() {
        return Err(format!("{at}: is empty"));
    }
    let mut errors = Vec::new();
    let mut built = Vec::with_capacity(fields.0.len());
    for (name, field) in &fields.0 {
        match compile_field(name, field, &format!("{at}.{name}"), config) {
            Ok(field) => built.push(field),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(built)
    } else {
        Err(errors.join("; "))
    }
}

fn compile_field(
    name: &str,
    field: &FieldConfig,
    at: &str,
    config: &SoapConfig,
) -> Result<Field, String> {
    let spec = match field {
        FieldConfig::Path(path) => FieldSpec {
            path: path.clone(),
            kind: None,
            items: None,
            fields: None,
        },
        FieldConfig::Spec(spec) => spec.clone(),
    };
    let path = ElementPath::compile(&spec.path, config).map_err(|e| format!("{at}: {e}"))?;
    let kind = spec.kind.unwrap_or(if spec.fields.is_some() {
        FieldType::Object
    } else {
        FieldType::String
    });
    let nested = |what: FieldType| match (&spec.fields, what) {
        (Some(fields), FieldType::Object) => {
            compile_fields(fields, &format!("{at}.fields"), config).map(Shape::Object)
        }
        (Some(_), _) => Err(format!("{at}: fields go with type object or array")),
        (None, FieldType::Object) => Err(format!(
            "{at}: type object needs fields (or use type generic)"
        )),
        (None, FieldType::Array) => Err(format!("{at}: an array cannot hold arrays")),
        (None, FieldType::String) => Ok(Shape::Scalar(Scalar::String)),
        (None, FieldType::Number) => Ok(Shape::Scalar(Scalar::Number)),
        (None, FieldType::Boolean) => Ok(Shape::Scalar(Scalar::Boolean)),
        (None, FieldType::Generic) => Ok(Shape::Generic),
    };
    let (many, shape) = match kind {
        FieldType::Array => {
            if path.ends_in_attribute() || path.is_current() {
                return Err(format!("{at}: an array's path must end in an element"));
            }
            let item = match (&spec.fields, spec.items) {
                (Some(_), Some(_)) => {
                    return Err(format!("{at}: set fields or items, not both"));
                }
                (Some(_), None) => FieldType::Object,
                (None, items) => items.unwrap_or(FieldType::String),
            };
            (true, nested(item)?)
        }
        other => {
            if spec.items.is_some() {
                return Err(format!("{at}: items goes with type array"));
            }
            (false, nested(other)?)
        }
    };
    if path.ends_in_attribute() && matches!(shape, Shape::Object(_)) {
        return Err(format!("{at}: an attribute cannot hold fields"));
    }
    Ok(Field::new(name, path, many, shape))
}

/// An XML name without a colon (letters, digits, `-`, `_`, `.`; not starting with a digit,
/// `-` or `.`): a prefix, or a local name in a path.
pub(crate) fn is_ncname(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct InOrder;
        impl<'de> Visitor<'de> for InOrder {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of JSON member names")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut fields = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    fields.push(entry);
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(InOrder)
    }
}

impl<'de> Deserialize<'de> for FieldConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PathOrSpec;
        impl<'de> Visitor<'de> for PathOrSpec {
            type Value = FieldConfig;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an element path, or a table with path and type")
            }
            fn visit_str<E: de::Error>(self, path: &str) -> Result<FieldConfig, E> {
                Ok(FieldConfig::Path(path.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<FieldConfig, A::Error> {
                FieldSpec::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(FieldConfig::Spec)
            }
        }
        deserializer.deserialize_any(PathOrSpec)
    }
}
