//! Filter chains, keeping unchanged filters (and their state) across reloads.

use std::path::Path;
use std::sync::Arc;

use corridor_filters::{BuildContext, Chain};
use sha2::{Digest, Sha256};

use crate::config::{ChainConfig, ConfigError, Located};
use crate::runtime::{BuiltChain, BuiltFilter};

pub(super) fn build_chain(
    name: &str,
    at: &Located<ChainConfig>,
    kept: Option<&BuiltChain>,
    named_files: &mut Vec<Vec<u8>>,
    errors: &mut Vec<ConfigError>,
) -> BuiltChain {
    let base_dir = at
        .file
        .path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut filters = Vec::new();
    for (index, entry) in at.value.filters.iter().enumerate() {
        let config = entry.get_ref();
        // Same filter, same config, same files, same place: keep the instance and whatever
        // it holds.
        let same = kept
            .and_then(|k| k.filters.get(index))
            .filter(|old| old.config == *config)
            .and_then(|old| unchanged_files(old, named_files));
        if let Some(old) = same {
            filters.push(old.clone());
            continue;
        }
        let ctx = BuildContext::new(&base_dir);
        let built = config.build(&ctx);
        let files = ctx.files_read();
        named_files.extend(files.iter().map(|(_, contents)| contents.clone()));
        match built {
            Ok(filter) => filters.push(BuiltFilter {
                config: config.clone(),
                files: files
                    .into_iter()
                    .map(|(path, contents)| (path, Sha256::digest(contents).into()))
                    .collect(),
                filter,
            }),
            Err(e) => errors.push(at.error_at(
                entry.span(),
                format!("chain \"{name}\": filter \"{}\": {e}", config.type_name()),
            )),
        }
    }
    let chain = match kept {
        Some(k)
            if k.filters.len() == filters.len()
                && k.filters
                    .iter()
                    .zip(&filters)
                    .all(|(a, b)| Arc::ptr_eq(&a.filter, &b.filter)) =>
        {
            k.chain.clone()
        }
        _ => Arc::new(Chain::new(
            filters.iter().map(|f| f.filter.clone()).collect(),
        )),
    };
    BuiltChain { chain, filters }
}

/// The kept filter, when every file it read still has the same contents; those contents
/// then join the config version, as they did when it was built.
fn unchanged_files<'a>(
    old: &'a BuiltFilter,
    named_files: &mut Vec<Vec<u8>>,
) -> Option<&'a BuiltFilter> {
    let mut contents = Vec::with_capacity(old.files.len());
    for (path, digest) in &old.files {
        let now = std::fs::read(path).ok()?;
        if <[u8; 32]>::from(Sha256::digest(&now)) != *digest {
            return None;
        }
        contents.push(now);
    }
    named_files.extend(contents);
    Some(old)
}
