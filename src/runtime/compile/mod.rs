//! Config → runtime. Checks everything and returns every error at once, each with
//! file:line:col, so `corridor check` reads like a compiler's output.

mod chain;
mod iso8583;
mod route;
mod settings;
mod tls;
mod upstream;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use corridor_filters::Chain;
use sha2::{Digest, Sha256};

use super::{Route, Router, Runtime};
use crate::config::{Config, ConfigError, Located, ServerConfig};
use crate::metrics::Metrics;
use chain::build_chain;
use route::{build_route, Targets};
use settings::{build_admin, listeners, settings};
use upstream::build_upstream;

/// What a build may use besides the config: where metrics go, and the runtime serving now,
/// whose unchanged upstreams and filters are kept with their state.
pub struct BuildEnv {
    pub metrics: Arc<Metrics>,
    pub previous: Option<Arc<Runtime>>,
}

impl BuildEnv {
    /// For a build that will not serve (`corridor check`).
    pub fn standalone() -> Self {
        BuildEnv {
            metrics: Metrics::new(),
            previous: None,
        }
    }
}

/// Builds a runtime, or returns every problem found.
pub fn compile(config: &Config, env: &BuildEnv) -> Result<Runtime, Vec<ConfigError>> {
    let mut errors = Vec::new();
    // Contents of files the config names (CAs, tokens): part of the version, so a rotated
    // certificate is a change even when the TOML is not.
    let mut named_files: Vec<Vec<u8>> = Vec::new();
    let previous = env.previous.as_deref();
    let first_file = config
        .files
        .first()
        .map(|f| f.path.clone())
        .unwrap_or_default();

    let default_server = Located {
        value: ServerConfig::default(),
        file: config.files[0].clone(),
        span: 0..0,
    };
    let server = config.server.as_ref().unwrap_or(&default_server);
    let settings = settings(&server.value, server, &mut errors);

    let listeners = listeners(config, &first_file, &mut named_files, &mut errors);
    let admin = config
        .admin
        .as_ref()
        .and_then(|admin| build_admin(admin, &mut named_files, &mut errors));

    let mut upstreams = BTreeMap::new();
    for (name, upstream) in &config.upstreams {
        let kept = previous.and_then(|p| p.upstreams.get(name));
        let built = build_upstream(name, upstream, kept, env, &mut named_files, &mut errors);
        if let Some(built) = built {
            upstreams.insert(name.clone(), built);
        }
    }

    let mut chains = BTreeMap::new();
    for (name, chain) in &config.chains {
        let kept = previous.and_then(|p| p.chains.get(name));
        chains.insert(
            name.clone(),
            build_chain(name, chain, kept, &mut named_files, &mut errors),
        );
    }

    let mut routes = Vec::new();
    let mut ids = HashSet::new();
    let targets = Targets {
        upstreams: &upstreams,
        chains: &chains,
        empty_chain: Arc::new(Chain::default()),
        defined_upstreams: config.upstreams.keys().map(String::as_str).collect(),
    };
    let previous_routes: std::collections::HashMap<&str, &Arc<Route>> = previous
        .map(|p| {
            p.router
                .routes()
                .iter()
                .map(|r| (r.id.as_ref(), r))
                .collect()
        })
        .unwrap_or_default();
    for route in &config.routes {
        let id = route.value.id.get_ref();
        if !ids.insert(id.clone()) {
            errors.push(route.error_at(
                route.value.id.span(),
                format!("route id \"{id}\" is used twice"),
            ));
        }
        let built = build_route(
            route,
            &targets,
            previous_routes.get(id.as_str()).copied(),
            env,
            &mut errors,
        );
        if let Some(built) = built {
            routes.push(built);
        }
    }
    if config.routes.is_empty() {
        errors.push(ConfigError::file(
            &first_file,
            "no [[routes]]: the gateway would answer 404 to everything",
        ));
    }

    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Runtime {
        router: Router::new(routes),
        upstreams,
        chains,
        settings,
        listeners,
        admin,
        version: version_hash(config, &named_files),
        files: config.files.iter().map(|f| f.path.clone()).collect(),
    })
}

fn version_hash(config: &Config, named_files: &[Vec<u8>]) -> String {
    let mut hasher = Sha256::new();
    for file in &config.files {
        hasher.update(file.path.to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update(file.text.as_bytes());
        hasher.update([0]);
    }
    for contents in named_files {
        hasher.update(Sha256::digest(contents));
    }
    hex::encode(&hasher.finalize()[..8])
}

/// A path from config, relative to the config file that names it.
fn relative_to(config_file: &Path, path: &Path) -> PathBuf {
    config_file
        .parent()
        .map_or(path.to_path_buf(), |dir| dir.join(path))
}
