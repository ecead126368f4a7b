//! ISO 8583 for `iso8583` upstreams: a declarative spec (a host's message layout and its
//! operations) compiled into a codec and JSON mappings. The link layer (framing, STAN
//! matching, echo) lives in `upstream`.
//!
//! A [`Message`] holds canonical values (ASCII characters, raw bytes for `b` fields);
//! [`Spec::encode`] and [`Spec::decode`] turn it into wire bytes and back, without framing.
//! An [`Operation`] maps a JSON body to a request message and the answer back to JSON, or to
//! a [`Declined`] problem.

mod bcd;
mod bitmap;
mod ebcdic;
mod field;
mod mapping;
mod message;
mod spec;

pub use field::FieldError;
pub use mapping::{Declined, Generated, MappingContext, MappingError, Operation};
pub use message::{CodecError, Message};
pub use spec::{Spec, SpecError};

#[cfg(test)]
mod tests;
