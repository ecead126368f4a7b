//! `soap`: partners call a JSON API, the core speaks SOAP. The request's JSON body (with its
//! path, query, headers and the consumer) fills a declarative envelope template; the core's
//! answer is read safely and mapped back to JSON, and SOAP Faults become problem+json.
//!
//! ```toml
//! [[chains.balance.filters]]
//! type = "soap"
//! version = "1.1"
//! action = "urn:corridor:democore:accounts:1#GetBalance"
//! path = "/soap/accounts"
//! namespaces = { acc = "urn:corridor:democore:accounts:1" }
//! request = "<acc:GetBalance><acc:accountId>${path:2}</acc:accountId></acc:GetBalance>"
//! response = { root = "acc:GetBalanceResponse/acc:balance", fields = { available = { path = "acc:available", type = "number" } } }
//! faults = { AccountNotFound = { status = 404, detail = "No such account" } }
//! ```
//!
//! Names in response paths and fault codes are matched by namespace URI, never by prefix, so
//! a core may answer with any prefix or a default namespace. The answer's XML is parsed only
//! after its size is capped (also once decompressed) and any document type declaration is
//! refused, so no entity is ever expanded or fetched; its nesting, attributes and namespace
//! declarations are counted first, so the parser's work stays bounded.

mod config;
mod fault;
mod filter;
mod limits;
mod mapping;
mod path;
mod template;
#[cfg(test)]
mod tests;
mod xml;

pub use config::{
    FaultMapping, FieldConfig, FieldSpec, FieldType, Fields, ResponseConfig, SoapConfig,
    SoapVersion,
};
