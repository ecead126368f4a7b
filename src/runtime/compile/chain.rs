//! Filter chains, keeping unchanged filters (and their state) across reloads.

use std::path::Path;
use std::sync::Arc;

use corridor_filters::{BuildContext, Chain};

use crate::config::{ChainConfig, ConfigError, Located};
use crate::runtime::BuiltChain;

pub(super) fn build_chain(
    name: &str,
    at: &Located<ChainConfig>,
    kept: Option<&BuiltChain>,
    errors: &mut Vec<ConfigError>,
) -> BuiltChain {
    let ctx = BuildContext {
        base_dir: at
            .file
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
    };
    let mut filters = Vec::new();
    for (index, entry) in at.value.filters.iter().enumerate() {
        let config = entry.get_ref();
        // Same filter, same config, same place: keep the instance and whatever it holds.
        let same = kept
            .and_then(|k| k.filters.get(index))
            .filter(|(old, _)| old == config);
        if let Some((_, filter)) = same {
            filters.push((config.clone(), filter.clone()));
            continue;
        }
        match config.build(&ctx) {
            Ok(filter) => filters.push((config.clone(), filter)),
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
                    .all(|(a, b)| Arc::ptr_eq(&a.1, &b.1)) =>
        {
            k.chain.clone()
        }
        _ => Arc::new(Chain::new(filters.iter().map(|(_, f)| f.clone()).collect())),
    };
    BuiltChain { chain, filters }
}
