//! The TOML schema: plain data, deserialized with unknown keys refused. Nothing here runs;
//! `crate::runtime::compile` turns a [`Config`] into the runtime.

mod load;
mod schema;
mod source;

pub use load::load;
pub use schema::*;
pub use source::{ConfigError, Located, SourceFile};
