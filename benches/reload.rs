//! How long a reload of a large config takes: read + validate + build 1,000 routes, and the
//! same when the previous runtime's upstreams and filters are kept, and the swap itself.

use std::sync::Arc;

use arc_swap::ArcSwap;
use corridor::runtime::{compile, BuildEnv};
use criterion::{criterion_group, criterion_main, Criterion};

const ROUTES: usize = 1000;

fn config_text() -> String {
    let mut text = String::from(
        "[server]\nthreads = 1\naccess_log = \"off\"\n\n[[listeners]]\nlisten = \"127.0.0.1:18080\"\n\n\
         [upstreams.core]\ntargets = [\"127.0.0.1:19001\", \"127.0.0.1:19002\"]\n\n\
         [chains.partner]\nfilters = [{ type = \"request_id\" }, { type = \"cors\", allow_origins = [\"https://a.example\"] }]\n",
    );
    for i in 0..ROUTES {
        text += &format!(
            "\n[[routes]]\nid = \"r{i}\"\nupstream = \"core\"\nchain = \"partner\"\n[routes.match]\npath_regex = \"/v1/r{i}/(?P<id>[0-9]+)\"\nmethods = [\"GET\", \"POST\"]\n[routes.rewrite]\nregex_replace = \"/core/{i}/${{id}}\"\n"
        );
    }
    text
}

fn reload(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corridor.toml");
    std::fs::write(&path, config_text()).unwrap();

    let first = corridor::config::load(&path).unwrap();
    let serving = Arc::new(compile(&first, &BuildEnv::standalone()).unwrap());
    let env = BuildEnv {
        metrics: corridor::metrics::Metrics::new(),
        previous: Some(serving.clone()),
    };

    let mut group = c.benchmark_group("reload_1000_routes");
    group.sample_size(20);
    group.bench_function("load_and_build_fresh", |b| {
        b.iter(|| {
            let config = corridor::config::load(&path).unwrap();
            compile(&config, &BuildEnv::standalone()).unwrap()
        })
    });
    group.bench_function("load_and_build_keeping_state", |b| {
        b.iter(|| {
            let config = corridor::config::load(&path).unwrap();
            compile(&config, &env).unwrap()
        })
    });
    let store = ArcSwap::new(serving.clone());
    group.bench_function("swap", |b| b.iter(|| store.store(serving.clone())));
    group.finish();
}

criterion_group!(benches, reload);
criterion_main!(benches);
