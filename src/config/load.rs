//! Reading config from a file or a directory of `*.toml` files, merged in name order.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml::Spanned;

use super::{Config, ConfigError, FileConfig, Located, SourceFile};

/// Reads and merges the config at `path`. Returns every error found, each with file:line:col;
/// a file that does not parse stops only that file, the others are still read.
pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
    let files = config_files(path).map_err(|e| vec![e])?;
    let mut config = Config::default();
    let mut errors = Vec::new();
    for file_path in files {
        let text = match std::fs::read_to_string(&file_path) {
            Ok(text) => text,
            Err(e) => {
                errors.push(ConfigError::file(&file_path, format!("cannot read: {e}")));
                continue;
            }
        };
        let file = Arc::new(SourceFile {
            path: file_path,
            text,
        });
        match toml::from_str::<FileConfig>(&file.text) {
            Ok(parsed) => merge(&mut config, parsed, &file, &mut errors),
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                errors.push(ConfigError::at(&file, span, e.message().trim()));
            }
        }
        config.files.push(file);
    }
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(errors)
    }
}

/// The files to read: the file itself, or the `*.toml` files of a directory in name order.
fn config_files(path: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| ConfigError::file(path, format!("cannot read config: {e}")))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path)
        .map_err(|e| ConfigError::file(path, format!("cannot list config directory: {e}")))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|ext| ext == "toml") && p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(ConfigError::file(
            path,
            "no *.toml files in config directory",
        ));
    }
    Ok(files)
}

fn locate<T>(item: Spanned<T>, file: &Arc<SourceFile>) -> Located<T> {
    let span = item.span();
    Located {
        value: item.into_inner(),
        file: file.clone(),
        span,
    }
}

fn merge(
    config: &mut Config,
    parsed: FileConfig,
    file: &Arc<SourceFile>,
    errors: &mut Vec<ConfigError>,
) {
    if let Some(server) = parsed.server {
        let server = locate(server, file);
        match &config.server {
            Some(first) => errors.push(server.error(format!(
                "[server] is already set in {}",
                first.file.path.display()
            ))),
            None => config.server = Some(server),
        }
    }
    if let Some(admin) = parsed.admin {
        let admin = locate(admin, file);
        match &config.admin {
            Some(first) => errors.push(admin.error(format!(
                "[admin] is already set in {}",
                first.file.path.display()
            ))),
            None => config.admin = Some(admin),
        }
    }
    config
        .listeners
        .extend(parsed.listeners.into_iter().map(|l| locate(l, file)));
    config
        .routes
        .extend(parsed.routes.into_iter().map(|r| locate(r, file)));
    for (name, upstream) in parsed.upstreams {
        let upstream = locate(upstream, file);
        if let Some(first) = config.upstreams.get(&name) {
            errors.push(upstream.error(format!(
                "upstream \"{name}\" is already defined at {}",
                first.file.path.display()
            )));
        } else {
            config.upstreams.insert(name, upstream);
        }
    }
    for (name, chain) in parsed.chains {
        let span = chain.filters.first().map_or(0..0, |f| f.span());
        let chain = Located {
            value: chain,
            file: file.clone(),
            span,
        };
        if let Some(first) = config.chains.get(&name) {
            errors.push(chain.error(format!(
                "chain \"{name}\" is already defined at {}",
                first.file.path.display()
            )));
        } else {
            config.chains.insert(name, chain);
        }
    }
}
