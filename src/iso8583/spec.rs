//! The spec file: a host's message layout (`mti`, `bitmap`, `[fields]`) and its operations,
//! read with serde and checked whole at load, so that a request can only fail on its own
//! data. Errors say `line:col: message`, relative to the file.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use http::StatusCode;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use toml::Spanned;

use super::bcd::Pad;
use super::bitmap::BitmapEncoding;
use super::field::{Encoding, FieldFormat, Kind, Length};
use super::mapping::{
    ContextKey, Decline, Fill, Generated, Input, Operation, Output, Piece, RequestField, Source,
};
use super::message::{Codec, CodecError, Message, MtiEncoding};

/// A spec that does not load: where (1-based, in the spec file) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{col}: {message}")]
pub struct SpecError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl SpecError {
    fn at(text: &str, span: Range<usize>, message: impl Into<String>) -> Self {
        let before = &text[..span.start.min(text.len())];
        SpecError {
            line: before.matches('\n').count() + 1,
            col: before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1,
            message: message.into(),
        }
    }
}

/// A compiled spec: the codec of a host and its operations. Immutable, so share it in an
/// `Arc`.
#[derive(Debug)]
pub struct Spec {
    codec: Codec,
    operations: BTreeMap<String, Operation>,
}

impl Spec {
    /// Parses and checks a spec file's text.
    pub fn from_toml(text: &str) -> Result<Spec, SpecError> {
        let file: SpecFile = toml::from_str(text)
            .map_err(|e| SpecError::at(text, e.span().unwrap_or(0..0), e.message().trim()))?;
        compile(file).map_err(|(span, message)| SpecError::at(text, span, message))
    }

    /// The wire form of a message, without framing.
    pub fn encode(&self, msg: &Message) -> Result<Vec<u8>, CodecError> {
        self.codec.encode(msg)
    }

    /// The message of a frame's payload; every byte must belong to a field of the spec.
    pub fn decode(&self, bytes: &[u8]) -> Result<Message, CodecError> {
        self.codec.decode(bytes)
    }

    /// Whether the link can send echo tests (0800 with fields 7, 11 and 70 = 301) and read
    /// their answers (0810, with 39 too): the spec defines field 70, and the load checked
    /// that the others can carry them.
    pub fn can_echo(&self) -> bool {
        self.codec.field(70).is_some()
    }

    /// The longest message the spec allows, so that the link can refuse a longer frame
    /// before reading it.
    pub fn max_message_len(&self) -> usize {
        self.codec.max_message_len()
    }

    pub fn operation(&self, name: &str) -> Option<&Operation> {
        self.operations.get(name)
    }

    pub fn operation_names(&self) -> impl Iterator<Item = &str> {
        self.operations.keys().map(String::as_str)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    #[serde(default)]
    mti: MtiEncoding,
    #[serde(default)]
    bitmap: BitmapEncoding,
    fields: BTreeMap<String, Spanned<FieldDef>>,
    approved: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    declines: BTreeMap<String, Spanned<DeclineDef>>,
    decline_default: Option<Spanned<DeclineDef>>,
    #[serde(default)]
    operations: BTreeMap<String, Spanned<OperationDef>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldDef {
    name: String,
    #[serde(rename = "type")]
    kind: Kind,
    length: LengthDef,
    max: Option<u16>,
    encoding: Option<Encoding>,
    length_encoding: Option<Encoding>,
    pad: Option<Pad>,
}

/// `length = 12` or `length = "llvar"` / `"lllvar"`.
enum LengthDef {
    Fixed(i64),
    Var(u8),
}

impl<'de> Deserialize<'de> for LengthDef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LengthVisitor;
        impl Visitor<'_> for LengthVisitor {
            type Value = LengthDef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a fixed length (a number), "llvar" or "lllvar""#)
            }
            fn visit_i64<E: de::Error>(self, length: i64) -> Result<LengthDef, E> {
                Ok(LengthDef::Fixed(length))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<LengthDef, E> {
                match text {
                    "llvar" => Ok(LengthDef::Var(2)),
                    "lllvar" => Ok(LengthDef::Var(3)),
                    _ => Err(E::invalid_value(de::Unexpected::Str(text), &self)),
                }
            }
        }
        deserializer.deserialize_any(LengthVisitor)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OperationDef {
    request_mti: Spanned<String>,
    response_mti: Spanned<String>,
    #[serde(default)]
    request: BTreeMap<String, Spanned<RequestDef>>,
    #[serde(default)]
    response: BTreeMap<String, Spanned<ResponseEntry>>,
    approved: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    declines: BTreeMap<String, Spanned<DeclineDef>>,
    decline_default: Option<Spanned<DeclineDef>>,
    /// The operation the gateway sends on its own when this one's outcome is unknown.
    reversed_by: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestDef {
    json: Option<String>,
    value: Option<String>,
    context: Option<String>,
    format: Option<String>,
    generate: Option<Generated>,
    pad: Option<Fill>,
    #[serde(default)]
    optional: bool,
}

/// `key = 38` or `key = { field = 38, type = "number", optional = true }` or
/// `key = { value = true }`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ResponseDef {
    field: Option<i64>,
    value: Option<toml::Value>,
    #[serde(rename = "type")]
    kind: Option<OutputType>,
    #[serde(default)]
    optional: bool,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum OutputType {
    String,
    Number,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeclineDef {
    status: u16,
    detail: String,
}

type Located = (Range<usize>, String);

fn fail<T>(span: &Range<usize>, message: impl Into<String>) -> Result<T, Located> {
    Err((span.clone(), message.into()))
}

fn compile(file: SpecFile) -> Result<Spec, Located> {
    let mut fields = vec![None; 129];
    let mut names = BTreeMap::new();
    let mut echo_span = 0..0;
    for (key, def) in file.fields {
        let span = def.span();
        let number = field_number(&key, &span, "fields")?;
        let def = def.into_inner();
        if let Some(other) = names.insert(def.name.clone(), number) {
            return fail(
                &span,
                format!(
                    "field {number}: the name {:?} is also field {other}'s",
                    def.name
                ),
            );
        }
        if number == 70 {
            echo_span = span.clone();
        }
        fields[usize::from(number)] =
            Some(field_format(def).map_err(|m| (span.clone(), format!("field {number}: {m}")))?);
    }
    let codec = Codec {
        mti: file.mti,
        bitmap: file.bitmap,
        fields,
    };
    check_echo(&codec).map_err(|m| (echo_span, m))?;
    let defaults = Responses {
        approved: file.approved,
        declines: file.declines,
        decline_default: file.decline_default,
    };
    let mut operations = BTreeMap::new();
    let mut reversals = Vec::new();
    for (name, def) in file.operations {
        let def = def.into_inner();
        if let Some(by) = &def.reversed_by {
            reversals.push((name.clone(), by.clone()));
        }
        let operation = compile_operation(&codec, &defaults, &name, def)
            .map_err(|(at, m)| (at, format!("operations.{name}: {m}")))?;
        operations.insert(name, operation);
    }
    check_reversals(&operations, &reversals)?;
    Ok(Spec { codec, operations })
}

/// A `reversed_by` names another operation, which is not reversed in turn: a reversal whose
/// outcome is unknown is repeated, never reversed.
fn check_reversals(
    operations: &BTreeMap<String, Operation>,
    reversals: &[(String, Spanned<String>)],
) -> Result<(), Located> {
    for (name, by) in reversals {
        let at = |m: String| (by.span(), format!("operations.{name}.reversed_by: {m}"));
        match operations.get(by.get_ref()) {
            None => return Err(at(format!("no operation {:?}", by.get_ref()))),
            Some(reversal) if reversal.name == *name || reversal.reversed_by.is_some() => {
                return Err(at(format!(
                    "{:?} is reversed in turn; a reversal must not be",
                    by.get_ref()
                )))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// A field number key: 2 to 128, written plainly.
fn field_number(key: &str, span: &Range<usize>, table: &str) -> Result<u8, Located> {
    match key.parse::<u8>() {
        Ok(number) if (2..=128).contains(&number) && number.to_string() == key => Ok(number),
        _ => fail(span, format!("{table}.{key}: field numbers are 2 to 128")),
    }
}

fn field_format(def: FieldDef) -> Result<FieldFormat, String> {
    let name_ok = !def.name.is_empty()
        && def.name.len() <= 64
        && def
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !name_ok {
        return Err("name must be 1 to 64 letters, digits or '_'".into());
    }
    let length = match (def.length, def.max) {
        (LengthDef::Fixed(n), None) if (1..=999).contains(&n) => Length::Fixed(n as u16),
        (LengthDef::Fixed(_), None) => return Err("a fixed length is 1 to 999".into()),
        (LengthDef::Fixed(_), Some(_)) => return Err("max is for llvar and lllvar fields".into()),
        (LengthDef::Var(_), None) => return Err("llvar and lllvar fields need a max".into()),
        (LengthDef::Var(2), Some(max)) if (1..=99).contains(&max) => Length::Var { digits: 2, max },
        (LengthDef::Var(3), Some(max)) if (1..=999).contains(&max) => {
            Length::Var { digits: 3, max }
        }
        (LengthDef::Var(2), Some(_)) => return Err("an llvar max is 1 to 99".into()),
        (LengthDef::Var(_), Some(_)) => return Err("an lllvar max is 1 to 999".into()),
    };
    let encoding = def.encoding.unwrap_or(match def.kind {
        Kind::B => Encoding::Binary,
        _ => Encoding::Ascii,
    });
    let fits = match def.kind {
        Kind::N | Kind::Z => matches!(encoding, Encoding::Ascii | Encoding::Ebcdic | Encoding::Bcd),
        Kind::An | Kind::Ans => matches!(encoding, Encoding::Ascii | Encoding::Ebcdic),
        Kind::B => encoding == Encoding::Binary,
    };
    if !fits {
        return Err(format!(
            "type {:?} cannot be encoded as {:?} (n and z: ascii, ebcdic or bcd; an and ans: \
             ascii or ebcdic; b: binary)",
            def.kind.name(),
            encoding.name()
        ));
    }
    if def.length_encoding.is_some() && matches!(length, Length::Fixed(_)) {
        return Err("length_encoding is for llvar and lllvar fields".into());
    }
    if def.pad.is_some() && encoding != Encoding::Bcd {
        return Err("pad is for bcd fields".into());
    }
    Ok(FieldFormat {
        name: def.name.into(),
        kind: def.kind,
        length,
        encoding,
        length_encoding: def.length_encoding.unwrap_or(match encoding {
            Encoding::Binary => Encoding::Ascii,
            other => other,
        }),
        pad: def.pad.unwrap_or_default(),
    })
}

/// A spec with field 70 must carry the link's echo test (0800: 7, 11, 70 = 301) and its
/// answer (0810: the same and 39).
fn check_echo(codec: &Codec) -> Result<(), String> {
    if codec.field(70).is_none() {
        return Ok(());
    }
    let mut echo = Message::new(*b"0800");
    echo.set(7, Generated::TransmissionTime.sample());
    echo.set(11, Generated::Stan.sample());
    echo.set(70, "301");
    let mut answer = echo.clone();
    answer.mti = *b"0810";
    answer.set(39, "00");
    for msg in [echo, answer] {
        if let Err(e) = codec.encode(&msg) {
            return Err(format!(
                "field 70: fields 7, 11, 39 and 70 must carry the echo test (0800/0810): {e}"
            ));
        }
    }
    Ok(())
}

/// The response code rules of the spec, which operations may override.
struct Responses {
    approved: Option<Spanned<Vec<String>>>,
    declines: BTreeMap<String, Spanned<DeclineDef>>,
    decline_default: Option<Spanned<DeclineDef>>,
}

fn compile_operation(
    codec: &Codec,
    defaults: &Responses,
    name: &str,
    def: OperationDef,
) -> Result<Operation, Located> {
    let mti = |mti: &Spanned<String>, key: &str| -> Result<[u8; 4], Located> {
        match <[u8; 4]>::try_from(mti.get_ref().as_bytes()) {
            Ok(digits) if digits.iter().all(u8::is_ascii_digit) => Ok(digits),
            _ => fail(&mti.span(), format!("{key} must be 4 digits")),
        }
    };
    let request_mti = mti(&def.request_mti, "request_mti")?;
    let response_mti = mti(&def.response_mti, "response_mti")?;

    let mut request = Vec::new();
    let mut generated: Vec<(u8, Generated)> = Vec::new();
    for (key, entry) in &def.request {
        let span = entry.span();
        let number = field_number(key, &span, "request")?;
        let format = codec.field(number).ok_or_else(|| {
            (
                span.clone(),
                format!("request.{number}: field {number} is not in [fields]"),
            )
        })?;
        let at = |m: String| (span.clone(), format!("request.{number}: {m}"));
        match request_field(number, format, entry.get_ref()).map_err(at)? {
            Compiled::Generated(what) => {
                if generated.iter().any(|&(_, other)| other == what) {
                    return Err(at(format!(
                        "{} is already generated by another field",
                        what.name()
                    )));
                }
                // The link matches answers by field 11 and checks field 37.
                let home = match what {
                    Generated::Stan => Some(11),
                    Generated::Rrn => Some(37),
                    _ => None,
                };
                if home.is_some_and(|home| home != number) {
                    return Err(at(format!(
                        "{} is generated into field {} only",
                        what.name(),
                        home.unwrap_or_default()
                    )));
                }
                generated.push((number, what));
            }
            Compiled::Field(field) => request.push(field),
        }
    }
    if !generated.iter().any(|&(_, what)| what == Generated::Stan) {
        return fail(
            &def.request_mti.span(),
            r#"the link matches answers by STAN: give request.11 = { generate = "stan" }"#,
        );
    }
    check_field_references(&request, &generated, &def.request)?;
    // Formats last: their placeholders may read the other fields.
    request.sort_by_key(|f| (matches!(f.source, Source::Format(_)), f.field));
    generated.sort_by_key(|&(field, _)| field);

    let code_format = codec.field(39).ok_or_else(|| {
        (
            def.response_mti.span(),
            "field 39 (the response code) must be in [fields]".to_owned(),
        )
    })?;
    if code_format.kind == Kind::B {
        return fail(
            &def.response_mti.span(),
            "field 39 (the response code) must be a text field, not b",
        );
    }
    let response = def
        .response
        .iter()
        .map(|(key, entry)| {
            response_output(codec, key, &entry.get_ref().0)
                .map(|output| (key.clone(), output))
                .map_err(|m| (entry.span(), format!("response.{key}: {m}")))
        })
        .collect::<Result<Vec<_>, _>>()?;

    let code = |code: &str, span: &Range<usize>| -> Result<Vec<u8>, Located> {
        code_format
            .check(code.as_bytes())
            .map(|()| code.as_bytes().to_vec())
            .map_err(|e| {
                (
                    span.clone(),
                    format!("response code {code:?}: field 39 {e}"),
                )
            })
    };
    let approved_list = def.approved.as_ref().or(defaults.approved.as_ref());
    let approved = match approved_list {
        Some(list) if list.get_ref().is_empty() => {
            return fail(&list.span(), "approved needs at least one response code")
        }
        Some(list) => list
            .get_ref()
            .iter()
            .map(|c| code(c, &list.span()))
            .collect::<Result<Vec<_>, _>>()?,
        None => vec![code("00", &def.response_mti.span())?],
    };
    let mut declines = BTreeMap::new();
    for (key, entry) in defaults.declines.iter().chain(&def.declines) {
        let span = entry.span();
        let bytes = code(key, &span)?;
        if approved.contains(&bytes) {
            return fail(
                &span,
                format!("response code {key:?} is both approved and declined"),
            );
        }
        declines.insert(bytes, decline(entry)?);
    }
    let decline_default = match def
        .decline_default
        .as_ref()
        .or(defaults.decline_default.as_ref())
    {
        Some(entry) => decline(entry)?,
        None => Decline {
            status: StatusCode::PAYMENT_REQUIRED,
            detail: "Declined".into(),
        },
    };
    Ok(Operation {
        name: name.to_owned(),
        request_mti,
        response_mti,
        request,
        generated,
        response,
        approved,
        declines,
        decline_default,
        reversed_by: def.reversed_by.map(Spanned::into_inner),
    })
}

enum Compiled {
    Generated(Generated),
    Field(RequestField),
}

fn request_field(number: u8, format: &FieldFormat, def: &RequestDef) -> Result<Compiled, String> {
    let sources = [
        def.json.is_some(),
        def.value.is_some(),
        def.context.is_some(),
        def.format.is_some(),
        def.generate.is_some(),
    ];
    if sources.iter().filter(|&&given| given).count() != 1 {
        return Err("give exactly one of json, value, context, format or generate".into());
    }
    if def.optional && def.json.is_none() && def.context.is_none() {
        return Err("optional is for json and context fields".into());
    }
    if let Some(fill) = def.pad {
        if def.generate.is_some() {
            return Err("a generated field is not padded".into());
        }
        let fits = match fill {
            Fill::Zeros => format.kind != Kind::B,
            Fill::Spaces => matches!(format.kind, Kind::An | Kind::Ans),
        };
        if !matches!(format.length, Length::Fixed(_)) || !fits {
            return Err(
                r#"pad is for fixed-length fields: "zeros" for text fields, "spaces" for an and ans fields"#.into(),
            );
        }
    }
    if let Some(what) = def.generate {
        return match format.check(what.sample()) {
            Ok(()) => Ok(Compiled::Generated(what)),
            Err(e) => Err(format!(
                "field {number} ({}) cannot hold a generated {}: it {e}",
                format.name,
                what.name()
            )),
        };
    }
    let (source, label) = if let Some(path) = &def.json {
        (Source::Input(Input::Json(json_path(path)?)), path.clone())
    } else if let Some(key) = &def.context {
        (
            Source::Input(Input::Context(context_key(key)?)),
            key.clone(),
        )
    } else if let Some(template) = &def.format {
        (
            Source::Format(parse_format(template)?),
            format!("format of field {number}"),
        )
    } else {
        let value = def.value.as_deref().unwrap_or_default();
        let bytes = if format.kind == Kind::B {
            hex::decode(value).map_err(|_| "a b field's value is written in hex")?
        } else {
            value.as_bytes().to_vec()
        };
        (Source::Value(bytes), format!("value of field {number}"))
    };
    let field = RequestField {
        field: number,
        format: format.clone(),
        source,
        label,
        fill: def.pad,
        optional: def.optional,
    };
    check_constant(&field)?;
    Ok(Compiled::Field(field))
}

/// Constants must fit their field: a value whole, a format's text as characters.
fn check_constant(field: &RequestField) -> Result<(), String> {
    let describe = |e| {
        format!(
            "does not fit field {} ({}): it {e}",
            field.field, field.format.name
        )
    };
    match &field.source {
        Source::Value(value) => {
            let mut value = value.clone();
            if let (Some(fill), Length::Fixed(length)) = (field.fill, field.format.length) {
                let missing = usize::from(length).saturating_sub(value.len());
                match fill {
                    Fill::Zeros => drop(value.splice(0..0, std::iter::repeat_n(b'0', missing))),
                    Fill::Spaces => value.extend(std::iter::repeat_n(b' ', missing)),
                }
            }
            field
                .format
                .check(&value)
                .map_err(|e| format!("value {}", describe(e)))
        }
        Source::Format(pieces) => {
            for piece in pieces {
                if let Piece::Text(text) = piece {
                    if !text.bytes().all(|c| field.format.kind.allows(c)) {
                        return Err(format!(
                            "format text {}",
                            describe(super::field::FieldError::Characters(field.format.kind))
                        ));
                    }
                }
            }
            if field.format.kind == Kind::B {
                return Err("a b field cannot take a format".into());
            }
            Ok(())
        }
        Source::Input(_) => Ok(()),
    }
}

/// A format's `{field.N}` placeholders must name a request field that is neither generated
/// nor itself a format.
fn check_field_references(
    request: &[RequestField],
    generated: &[(u8, Generated)],
    defs: &BTreeMap<String, Spanned<RequestDef>>,
) -> Result<(), Located> {
    for field in request {
        let Source::Format(pieces) = &field.source else {
            continue;
        };
        for piece in pieces {
            let Piece::Slot {
                input: Input::Field(target),
                label,
                ..
            } = piece
            else {
                continue;
            };
            let readable = request
                .iter()
                .any(|f| f.field == *target && !matches!(f.source, Source::Format(_)));
            if !readable {
                let why = if generated.iter().any(|(g, _)| g == target) {
                    "is generated by the link after mapping"
                } else {
                    "is not a json, value or context field of this request"
                };
                let span = defs[&field.field.to_string()].span();
                return fail(
                    &span,
                    format!("request.{}: {{{label}}}: field {target} {why}", field.field),
                );
            }
        }
    }
    Ok(())
}

fn json_path(path: &str) -> Result<Vec<String>, String> {
    let members: Option<Vec<String>> = path
        .strip_prefix("$.")
        .map(|rest| rest.split('.').map(str::to_owned).collect());
    match members {
        Some(members)
            if members.len() <= 16
                && members.iter().all(|m| {
                    !m.is_empty() && m.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                }) =>
        {
            Ok(members)
        }
        _ => Err(format!(
            "{path:?} is not a JSON path of member names like \"$.card.pan\" (letters, digits, '_' and '-', at most 16 deep)"
        )),
    }
}

fn context_key(key: &str) -> Result<ContextKey, String> {
    let named = |name: &str| !name.is_empty();
    match key {
        "consumer.id" => Ok(ContextKey::ConsumerId),
        _ => match (
            key.strip_prefix("consumer.metadata."),
            key.strip_prefix("attributes."),
        ) {
            (Some(name), _) if named(name) => Ok(ContextKey::ConsumerMetadata(name.to_owned())),
            (_, Some(name)) if named(name) => Ok(ContextKey::Attribute(name.to_owned())),
            _ => Err(format!(
                r#"{key:?} is not "consumer.id", "consumer.metadata.NAME" or "attributes.NAME""#
            )),
        },
    }
}

/// `text{$.json.path}text{field.32:11}`: placeholders are a JSON path, a context key or
/// `field.N`, each with an optional `:WIDTH` to zero-pad to.
fn parse_format(template: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut rest = template;
    while !rest.is_empty() {
        let Some(open) = rest.find(['{', '}']) else {
            pieces.push(Piece::Text(rest.to_owned()));
            break;
        };
        if open > 0 {
            pieces.push(Piece::Text(rest[..open].to_owned()));
        }
        if rest[open..].starts_with('}') {
            return Err("format: a '}' without its '{'".into());
        }
        let close = rest[open..]
            .find('}')
            .ok_or("format: a '{' without its '}'")?
            + open;
        let slot = &rest[open + 1..close];
        let (from, width) = match slot.split_once(':') {
            Some((from, width)) => match width.parse::<usize>() {
                Ok(width) if (1..=999).contains(&width) => (from, Some(width)),
                _ => return Err(format!("format: {{{slot}}}: a width is 1 to 999")),
            },
            None => (slot, None),
        };
        let input = if from.starts_with('$') {
            Input::Json(json_path(from)?)
        } else if let Some(number) = from.strip_prefix("field.") {
            match number.parse::<u8>() {
                Ok(n) if (2..=128).contains(&n) => Input::Field(n),
                _ => return Err(format!("format: {{{slot}}}: field numbers are 2 to 128")),
            }
        } else {
            Input::Context(context_key(from).map_err(|m| format!("format: {{{slot}}}: {m}"))?)
        };
        pieces.push(Piece::Slot {
            input,
            label: from.to_owned(),
            width,
        });
        rest = &rest[close + 1..];
    }
    Ok(pieces)
}

fn response_output(codec: &Codec, key: &str, def: &ResponseDef) -> Result<Output, String> {
    if key.is_empty() {
        return Err("a key must not be empty".into());
    }
    match (def.field, &def.value) {
        (Some(number), None) => {
            let format = u8::try_from(number)
                .ok()
                .and_then(|n| codec.field(n))
                .ok_or_else(|| format!("field {number} is not in [fields]"))?;
            let number_type = def.kind == Some(OutputType::Number);
            if number_type && (format.kind != Kind::N || format.length.max() > 19) {
                return Err(r#"type = "number" is for n fields of at most 19 digits"#.into());
            }
            Ok(Output::Field {
                field: number as u8,
                format: format.clone(),
                number: number_type,
                optional: def.optional,
            })
        }
        (None, Some(value)) if def.kind.is_none() && !def.optional => json_value(value)
            .map(Output::Value)
            .ok_or_else(|| "a value cannot be a date or time".into()),
        (None, Some(_)) => Err("type and optional are for field entries".into()),
        _ => Err("give exactly one of field or value".into()),
    }
}

/// A TOML constant as JSON; `None` for dates and times, which JSON lacks.
fn json_value(value: &toml::Value) -> Option<serde_json::Value> {
    use serde_json::Value as Json;
    Some(match value {
        toml::Value::String(s) => Json::String(s.clone()),
        toml::Value::Integer(i) => Json::from(*i),
        toml::Value::Float(f) => Json::from(*f),
        toml::Value::Boolean(b) => Json::Bool(*b),
        toml::Value::Datetime(_) => return None,
        toml::Value::Array(items) => {
            Json::Array(items.iter().map(json_value).collect::<Option<_>>()?)
        }
        toml::Value::Table(table) => Json::Object(
            table
                .iter()
                .map(|(k, v)| Some((k.clone(), json_value(v)?)))
                .collect::<Option<_>>()?,
        ),
    })
}

fn decline(entry: &Spanned<DeclineDef>) -> Result<Decline, Located> {
    let def = entry.get_ref();
    let status = StatusCode::from_u16(def.status)
        .ok()
        .filter(|s| s.is_client_error() || s.is_server_error());
    let Some(status) = status else {
        return fail(&entry.span(), "a decline's status is 400 to 599");
    };
    if def.detail.is_empty() || def.detail.len() > 200 {
        return fail(&entry.span(), "a decline's detail is 1 to 200 characters");
    }
    Ok(Decline {
        status,
        detail: def.detail.clone(),
    })
}

/// `response.KEY = 38` is short for `{ field = 38 }`.
struct ResponseEntry(ResponseDef);

impl<'de> Deserialize<'de> for ResponseEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor;
        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = ResponseEntry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field number or a table { field, type, optional } or { value }")
            }
            fn visit_i64<E: de::Error>(self, field: i64) -> Result<ResponseEntry, E> {
                Ok(ResponseEntry(ResponseDef {
                    field: Some(field),
                    ..ResponseDef::default()
                }))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ResponseEntry, A::Error> {
                ResponseDef::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(ResponseEntry)
            }
        }
        deserializer.deserialize_any(EntryVisitor)
    }
}
