//! The Redis settings that filters with a shared store have in common (`rate_limit` with
//! `store = "redis"`, the `vault` tokenization engine), checked the same way.

use std::path::PathBuf;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::IntoConnectionInfo;
use tokio::sync::OnceCell;

use crate::BuildContext;

/// Where a filter reaches Redis. A user name may be in the URL; a password may not: it
/// comes from an environment variable or a file.
pub(crate) struct RedisEndpoint<'a> {
    pub url: &'a str,
    pub password_env: Option<&'a str>,
    pub password_file: Option<&'a PathBuf>,
    pub timeout: Duration,
    pub key_prefix: &'a str,
}

impl RedisEndpoint<'_> {
    /// Checks the settings and makes the client; connects to nothing. An error names the
    /// setting at fault (`timeout must…`, `url must…`) and never carries the URL or the
    /// password.
    pub(crate) fn client(&self, ctx: &BuildContext) -> Result<redis::Client, String> {
        if self.timeout.is_zero() || self.timeout > Duration::from_secs(10) {
            return Err("timeout must be more than 0 and at most 10s".into());
        }
        if !(1..=128).contains(&self.key_prefix.len())
            || !self.key_prefix.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err("key_prefix must be 1 to 128 visible ASCII characters".into());
        }
        if !self.url.starts_with("redis://") {
            return Err("url must start with redis://".into());
        }
        let info = self
            .url
            .into_connection_info()
            .map_err(|_| "url is not a valid redis:// URL".to_owned())?;
        if info.redis_settings().password().is_some() {
            return Err("url must not hold a password: use password_env or password_file".into());
        }
        let password = match (self.password_env, self.password_file) {
            (Some(_), Some(_)) => {
                return Err("password_env and password_file: set one, not both".into())
            }
            (Some(name), None) => Some(std::env::var(name).map_err(|_| {
                format!("password_env: the environment variable {name:?} is not set or not UTF-8")
            })?),
            (None, Some(path)) => {
                let text = ctx
                    .read_text_file(path)
                    .map_err(|e| format!("password_file: {e}"))?;
                Some(text.trim_end_matches(['\r', '\n']).to_owned())
            }
            (None, None) => None,
        };
        let info = match password {
            Some(password) if !password.is_empty() => {
                let settings = info.redis_settings().clone().set_password(password);
                info.set_redis_settings(settings)
            }
            Some(_) => return Err("the password is empty".into()),
            None => info,
        };
        redis::Client::open(info).map_err(|_| "url: cannot make a client for it".into())
    }
}

/// A connection to Redis made on first use, since building a filter never waits on the
/// network (`corridor check` builds without a runtime), then shared; it reconnects by itself.
pub(crate) struct LazyConnection {
    client: redis::Client,
    timeout: Duration,
    connection: OnceCell<ConnectionManager>,
}

impl LazyConnection {
    pub(crate) fn new(client: redis::Client, timeout: Duration) -> Self {
        LazyConnection {
            client,
            timeout,
            connection: OnceCell::new(),
        }
    }

    /// The shared connection, connecting (with the timeout) on first use.
    pub(crate) async fn get(&self) -> redis::RedisResult<ConnectionManager> {
        let connection = self
            .connection
            .get_or_try_init(|| {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(1);
                ConnectionManager::new_with_config(self.client.clone(), config)
            })
            .await?;
        Ok(connection.clone())
    }
}
