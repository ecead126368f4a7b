//! Operations: how a JSON request becomes a message, and how the host's answer becomes a JSON
//! body or a decline. Compiled from a spec's `[operations.NAME]` by `spec.rs`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use corridor_filters::{Consumer, Problem, RequestContext};
use http::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use super::field::{FieldError, FieldFormat, Kind, Length};
use super::message::Message;

/// A field the link fills just before sending, so that it is unique per link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Generated {
    /// System trace audit number, n6.
    Stan,
    /// Retrieval reference number, `YDDDhhSSSSSS`.
    Rrn,
    /// Transmission date and time, `MMDDhhmmss` UTC.
    TransmissionTime,
    /// Local time `hhmmss`.
    LocalTime,
    /// Local date `MMDD`.
    LocalDate,
}

impl Generated {
    /// Its name in the spec file.
    pub fn name(self) -> &'static str {
        match self {
            Generated::Stan => "stan",
            Generated::Rrn => "rrn",
            Generated::TransmissionTime => "transmission_time",
            Generated::LocalTime => "local_time",
            Generated::LocalDate => "local_date",
        }
    }

    /// A value of the generated kind, to check at load that its field can hold it.
    pub(crate) fn sample(self) -> &'static [u8] {
        match self {
            Generated::Stan => b"000001",
            Generated::Rrn => b"512312000001",
            Generated::TransmissionTime => b"1231235959",
            Generated::LocalTime => b"235959",
            Generated::LocalDate => b"1231",
        }
    }
}

/// What the request mapping may read besides the body: who is calling, and what earlier
/// filters noted.
#[derive(Debug, Clone, Copy, Default)]
pub struct MappingContext<'a> {
    pub consumer: Option<&'a Consumer>,
    pub attributes: Option<&'a BTreeMap<String, String>>,
}

impl<'a> From<&'a RequestContext> for MappingContext<'a> {
    fn from(ctx: &'a RequestContext) -> Self {
        MappingContext {
            consumer: ctx.consumer.as_ref(),
            attributes: Some(&ctx.attributes),
        }
    }
}

/// Why a JSON request cannot become a message: the client's fault, a 400. Names the JSON
/// path (or context key) and the field, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("{0} is required")]
    Missing(String),
    #[error("{0} must be a string or a whole number")]
    NotScalar(String),
    #[error("{0} must be a hexadecimal string")]
    NotHex(String),
    #[error("{at} must be at most {width} characters")]
    TooWide { at: String, width: usize },
    #[error("{at}: field {field} ({name}) {error}")]
    Invalid {
        at: String,
        field: u8,
        name: Box<str>,
        error: FieldError,
    },
}

/// The host declined the request, or failed to answer it properly. Becomes a problem: a
/// 4xx `card-declined` or a 5xx `card-host-failed`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct Declined {
    pub status: StatusCode,
    /// The host's response code (field 39), when its answer had one.
    pub code: Option<String>,
    /// Safe text from the spec, or about the answer's shape; never a field value.
    pub detail: String,
}

impl Declined {
    pub fn kind(&self) -> &'static str {
        if self.status.is_server_error() {
            "card-host-failed"
        } else {
            "card-declined"
        }
    }

    pub fn title(&self) -> &'static str {
        if self.status.is_server_error() {
            "The card host failed"
        } else {
            "Declined by the card host"
        }
    }

    /// The problem answered to the client; the detail carries the response code.
    pub fn problem(&self) -> Problem {
        let detail = match &self.code {
            Some(code) => format!("{} (response code {code})", self.detail),
            None => self.detail.clone(),
        };
        Problem::new(self.status, self.kind(), self.title()).with_detail(detail)
    }

    fn host_failed(code: Option<&[u8]>, detail: String) -> Self {
        Declined {
            status: StatusCode::BAD_GATEWAY,
            code: code.map(|c| String::from_utf8_lossy(c).into_owned()),
            detail,
        }
    }
}

/// What the request reads from the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ContextKey {
    ConsumerId,
    ConsumerMetadata(String),
    Attribute(String),
}

/// Something a request field or a format placeholder reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Input {
    /// Member names from the top of the body: `$.original.stan` is `["original", "stan"]`.
    Json(Vec<String>),
    Context(ContextKey),
    /// Another request field's value (a format placeholder only).
    Field(u8),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    Text(String),
    /// A placeholder, zero-padded on the left to `width` when given.
    Slot {
        input: Input,
        label: String,
        width: Option<usize>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    Value(Vec<u8>),
    Input(Input),
    Format(Vec<Piece>),
}

/// How a short value is padded up to a fixed length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fill {
    /// Leading zeros (`n` amounts).
    Zeros,
    /// Trailing spaces (`an`/`ans` ids).
    Spaces,
}

/// One field of the request.
#[derive(Debug, Clone)]
pub(crate) struct RequestField {
    pub field: u8,
    pub format: FieldFormat,
    pub source: Source,
    /// How errors name where the value came from: `$.pan`, `consumer.id`, `field 90's format`.
    pub label: String,
    pub fill: Option<Fill>,
    pub optional: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum Output {
    Field {
        field: u8,
        format: FieldFormat,
        number: bool,
        optional: bool,
    },
    Value(Value),
}

/// A response code's problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decline {
    pub status: StatusCode,
    pub detail: String,
}

/// One operation of a spec: a request MTI, how to fill its fields from JSON, and how to read
/// the answer.
#[derive(Debug)]
pub struct Operation {
    pub(crate) name: String,
    pub(crate) request_mti: [u8; 4],
    pub(crate) response_mti: [u8; 4],
    /// In field order, except that formats come last: they may read other fields.
    pub(crate) request: Vec<RequestField>,
    pub(crate) generated: Vec<(u8, Generated)>,
    pub(crate) response: Vec<(String, Output)>,
    pub(crate) approved: Vec<Vec<u8>>,
    pub(crate) declines: BTreeMap<Vec<u8>, Decline>,
    pub(crate) decline_default: Decline,
    /// The operation sent on the gateway's own when this one's outcome is unknown.
    pub(crate) reversed_by: Option<String>,
}

impl Operation {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn request_mti(&self) -> [u8; 4] {
        self.request_mti
    }

    /// Whether the host's answer carries a response code this operation counts as approved.
    pub fn is_approved(&self, answer: &Message) -> bool {
        answer
            .get(39)
            .is_some_and(|code| self.approved.iter().any(|a| a.as_slice() == code))
    }

    /// The operation that reverses this one when its outcome is unknown (a timeout, a link
    /// dropped after sending), if the spec names one.
    pub fn reversed_by(&self) -> Option<&str> {
        self.reversed_by.as_deref()
    }

    pub fn response_mti(&self) -> [u8; 4] {
        self.response_mti
    }

    /// The fields the link fills before sending (always the STAN), which `request` leaves out.
    pub fn generated(&self) -> &[(u8, Generated)] {
        &self.generated
    }

    /// The request for this JSON body and context, without the generated fields.
    pub fn request(&self, body: &Value, ctx: &MappingContext<'_>) -> Result<Message, MappingError> {
        let mut msg = Message::new(self.request_mti);
        for field in &self.request {
            let raw = match &field.source {
                Source::Value(value) => Some(Cow::Borrowed(value.as_slice())),
                Source::Input(input) => {
                    let binary = field.format.kind == Kind::B;
                    read(input, &field.label, binary, body, ctx, &msg)?
                }
                Source::Format(pieces) => Some(Cow::Owned(format(pieces, body, ctx, &msg)?)),
            };
            let Some(raw) = raw else {
                if field.optional {
                    continue;
                }
                return Err(MappingError::Missing(field.label.clone()));
            };
            let value = fill(raw, field.fill, field.format.length);
            field
                .format
                .check(&value)
                .map_err(|error| MappingError::Invalid {
                    at: field.label.clone(),
                    field: field.field,
                    name: field.format.name.clone(),
                    error,
                })?;
            msg.fields.insert(field.field, value.into_owned());
        }
        Ok(msg)
    }

    /// The JSON body for the host's answer when its response code is approved; otherwise the
    /// decline (or host failure) that the code, or the answer's shape, stands for.
    pub fn response(&self, msg: &Message) -> Result<Value, Declined> {
        let code = msg.get(39);
        if msg.mti != self.response_mti {
            return Err(Declined::host_failed(
                code,
                "The card host answered with an unexpected message type".into(),
            ));
        }
        let Some(code) = code else {
            return Err(Declined::host_failed(
                None,
                "The card host's answer has no response code".into(),
            ));
        };
        if !self.approved.iter().any(|approved| approved == code) {
            let decline = self.declines.get(code).unwrap_or(&self.decline_default);
            return Err(Declined {
                status: decline.status,
                code: Some(String::from_utf8_lossy(code).into_owned()),
                detail: decline.detail.clone(),
            });
        }
        let mut body = serde_json::Map::with_capacity(self.response.len());
        for (key, output) in &self.response {
            let value = match output {
                Output::Value(value) => value.clone(),
                Output::Field {
                    field,
                    format,
                    number,
                    optional,
                } => match msg.get(*field) {
                    None if *optional => continue,
                    None => {
                        return Err(Declined::host_failed(
                            Some(code),
                            format!(
                                "The card host's answer lacks field {field} ({})",
                                format.name
                            ),
                        ))
                    }
                    Some(value) if format.kind == Kind::B => {
                        Value::String(hex::encode_upper(value))
                    }
                    // Decoding checked the field's type: `n` is digits, at most 19 of them.
                    Some(value) if *number => std::str::from_utf8(value)
                        .ok()
                        .and_then(|digits| digits.parse::<u64>().ok())
                        .map_or(Value::Null, Value::from),
                    Some(value) => Value::String(String::from_utf8_lossy(value).into_owned()),
                },
            };
            body.insert(key.clone(), value);
        }
        Ok(Value::Object(body))
    }
}

/// The value of an input, as field characters (or, for a `binary` field, the bytes of a hex
/// string); `None` when absent.
fn read<'a>(
    input: &Input,
    label: &str,
    binary: bool,
    body: &'a Value,
    ctx: &MappingContext<'a>,
    msg: &'a Message,
) -> Result<Option<Cow<'a, [u8]>>, MappingError> {
    Ok(match input {
        Input::Json(path) => {
            let found = path
                .iter()
                .try_fold(body, |value, member| value.as_object()?.get(member));
            match found {
                None | Some(Value::Null) => None,
                Some(value) if binary => match value.as_str().map(hex::decode) {
                    Some(Ok(bytes)) => Some(Cow::Owned(bytes)),
                    _ => return Err(MappingError::NotHex(label.to_owned())),
                },
                Some(Value::String(text)) => Some(Cow::Borrowed(text.as_bytes())),
                Some(Value::Number(number)) => match number.as_u64() {
                    Some(whole) => Some(Cow::Owned(whole.to_string().into_bytes())),
                    None => return Err(MappingError::NotScalar(label.to_owned())),
                },
                Some(_) => return Err(MappingError::NotScalar(label.to_owned())),
            }
        }
        Input::Context(key) => {
            let text = match key {
                ContextKey::ConsumerId => ctx.consumer.map(|c| c.id.as_str()),
                ContextKey::ConsumerMetadata(name) => ctx
                    .consumer
                    .and_then(|c| c.metadata.get(name))
                    .map(String::as_str),
                ContextKey::Attribute(name) => {
                    ctx.attributes.and_then(|a| a.get(name)).map(String::as_str)
                }
            };
            text.map(|t| Cow::Borrowed(t.as_bytes()))
        }
        Input::Field(field) => msg.get(*field).map(Cow::Borrowed),
    })
}

/// The text of a format: its pieces with placeholders filled in.
fn format(
    pieces: &[Piece],
    body: &Value,
    ctx: &MappingContext<'_>,
    msg: &Message,
) -> Result<Vec<u8>, MappingError> {
    let mut out = Vec::new();
    for piece in pieces {
        match piece {
            Piece::Text(text) => out.extend_from_slice(text.as_bytes()),
            Piece::Slot {
                input,
                label,
                width,
            } => {
                let text = read(input, label, false, body, ctx, msg)?
                    .ok_or_else(|| MappingError::Missing(label.clone()))?;
                if let Some(width) = *width {
                    if text.len() > width {
                        return Err(MappingError::TooWide {
                            at: label.clone(),
                            width,
                        });
                    }
                    out.resize(out.len() + width - text.len(), b'0');
                }
                out.extend_from_slice(&text);
            }
        }
    }
    Ok(out)
}

/// Pads a value shorter than its fixed length.
fn fill(value: Cow<'_, [u8]>, fill: Option<Fill>, length: Length) -> Cow<'_, [u8]> {
    let (Some(fill), Length::Fixed(length)) = (fill, length) else {
        return value;
    };
    let length = usize::from(length);
    if value.len() >= length {
        return value;
    }
    let mut padded = Vec::with_capacity(length);
    match fill {
        Fill::Zeros => {
            padded.resize(length - value.len(), b'0');
            padded.extend_from_slice(&value);
        }
        Fill::Spaces => {
            padded.extend_from_slice(&value);
            padded.resize(length, b' ');
        }
    }
    Cow::Owned(padded)
}
