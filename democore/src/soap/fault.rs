//! SOAP faults, written in the version the client spoke.

use std::borrow::Cow;

use super::render::{envelope, escape};
use super::request::Version;
use super::SERVICE_NS;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FaultCode {
    AccountNotFound,
    InsufficientFunds,
    InvalidRequest,
    /// The envelope is not in the namespace of the version the Content-Type names.
    VersionMismatch,
    /// The core's own failure (SOAP 1.1 `Server`, 1.2 `Receiver`).
    Server,
}

impl FaultCode {
    /// The service's name for a client fault, used as the 1.1 faultcode suffix,
    /// 1.1 detail element and 1.2 subcode.
    fn client_fault_name(self) -> Option<&'static str> {
        match self {
            FaultCode::AccountNotFound => Some("AccountNotFound"),
            FaultCode::InsufficientFunds => Some("InsufficientFunds"),
            FaultCode::InvalidRequest => Some("InvalidRequest"),
            FaultCode::VersionMismatch | FaultCode::Server => None,
        }
    }
}

/// A fault and its human-readable reason. Reasons never quote the request's values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Fault {
    pub(crate) code: FaultCode,
    pub(crate) reason: Cow<'static, str>,
}

impl Fault {
    pub(crate) fn invalid(reason: impl Into<Cow<'static, str>>) -> Fault {
        Fault {
            code: FaultCode::InvalidRequest,
            reason: reason.into(),
        }
    }

    pub(crate) fn account_not_found(which: &'static str) -> Fault {
        Fault {
            code: FaultCode::AccountNotFound,
            reason: Cow::Borrowed(which),
        }
    }

    pub(crate) fn insufficient_funds() -> Fault {
        Fault {
            code: FaultCode::InsufficientFunds,
            reason: Cow::Borrowed("insufficient funds"),
        }
    }

    pub(crate) fn version_mismatch() -> Fault {
        Fault {
            code: FaultCode::VersionMismatch,
            reason: Cow::Borrowed("the envelope's namespace does not match the SOAP version"),
        }
    }

    pub(crate) fn server(reason: &'static str) -> Fault {
        Fault {
            code: FaultCode::Server,
            reason: Cow::Borrowed(reason),
        }
    }

    /// The whole envelope carrying this fault.
    pub(crate) fn to_xml(&self, version: Version) -> String {
        let reason = escape(&self.reason);
        let name = self.code.client_fault_name();
        let fault = match version {
            Version::V11 => {
                let (code, detail) = match (self.code, name) {
                    (_, Some(name)) => (
                        format!("soap:Client.{name}"),
                        format!("<detail><acc:{name} xmlns:acc=\"{SERVICE_NS}\"/></detail>"),
                    ),
                    (FaultCode::VersionMismatch, None) => {
                        ("soap:VersionMismatch".into(), String::new())
                    }
                    (_, None) => ("soap:Server".into(), String::new()),
                };
                format!(
                    "<soap:Fault><faultcode>{code}</faultcode>\
                     <faultstring>{reason}</faultstring>{detail}</soap:Fault>"
                )
            }
            Version::V12 => {
                let code = match (self.code, name) {
                    (_, Some(name)) => format!(
                        "<env:Value>env:Sender</env:Value>\
                         <env:Subcode><env:Value>acc:{name}</env:Value></env:Subcode>"
                    ),
                    (FaultCode::VersionMismatch, None) => {
                        "<env:Value>env:VersionMismatch</env:Value>".into()
                    }
                    (_, None) => "<env:Value>env:Receiver</env:Value>".into(),
                };
                format!(
                    "<env:Fault xmlns:acc=\"{SERVICE_NS}\"><env:Code>{code}</env:Code>\
                     <env:Reason><env:Text xml:lang=\"en\">{reason}</env:Text></env:Reason>\
                     </env:Fault>"
                )
            }
        };
        envelope(version, &fault)
    }
}
