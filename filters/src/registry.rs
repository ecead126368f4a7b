//! The one place that maps a filter's `type` in config to its config struct.

use std::sync::Arc;

use serde::Deserialize;

use crate::{BuildContext, BuildError, Filter};

/// Declares [`FilterConfig`] with one variant per filter, and its `build`.
/// Adding a filter is one line here: `type_name => module::ConfigStruct`.
macro_rules! filter_registry {
    ($($name:ident => $config:ty),* $(,)?) => {
        /// One entry of a chain in config: `type = "..."` picks the filter, the other keys
        /// are that filter's options.
        #[derive(Debug, Clone, Deserialize, PartialEq)]
        #[serde(tag = "type", rename_all = "snake_case")]
        #[allow(non_camel_case_types)]
        pub enum FilterConfig {
            $($name($config),)*
        }

        impl FilterConfig {
            /// The filter's `type` name.
            pub fn type_name(&self) -> &'static str {
                match self {
                    $(Self::$name(_) => stringify!($name),)*
                }
            }

            /// Builds the runtime filter from its config.
            pub fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn Filter>, BuildError> {
                match self {
                    $(Self::$name(config) => config.build(ctx),)*
                }
            }
        }
    };
}

filter_registry! {
    headers => crate::headers::HeadersConfig,
    request_id => crate::request_id::RequestIdConfig,
    body_limit => crate::body_limit::BodyLimitConfig,
    cors => crate::cors::CorsConfig,
    json_fields => crate::json_fields::JsonFieldsConfig,
    rate_limit => crate::rate_limit::RateLimitConfig,
    jwt => crate::jwt::JwtConfig,
    api_key => crate::api_key::ApiKeyConfig,
    mtls_consumer => crate::mtls_consumer::MtlsConsumerConfig,
    client_cert_headers => crate::client_cert_headers::ClientCertHeadersConfig,
    tokenize => crate::tokenize::TokenizeConfig,
    detokenize => crate::tokenize::DetokenizeConfig,
    soap => crate::soap::SoapConfig,
}
