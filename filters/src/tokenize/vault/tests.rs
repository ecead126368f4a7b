//! The vault engine end to end, on redb in temporary directories and on the real Redis on
//! 127.0.0.1:6379 (`redis-server` must run: the Redis tests fail, not skip, without it).
//! Each Redis test uses its own key prefix and deletes its keys at the end.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::*;

const KEY_1: &str = "2b7e151628aed2a6abf7158809cf4f3cef4369910f9a5e2e8c4d1b9a7f6e5d4c";
const KEY_2: &str = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";

const PAN: &str = "4111111111111111";
const IBAN: &str = "GB82WEST12345698765432";

/// A config directory holding the key files `v1.key` and `v2.key`.
fn config_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("v1.key"), KEY_1).unwrap();
    std::fs::write(dir.path().join("v2.key"), KEY_2).unwrap();
    dir
}

/// An engine of `kind` with key versions `versions.1` (`v{n}.key`), `versions.0` active,
/// and the other vault settings `vault`.
fn try_build(
    dir: &Path,
    kind: ValueKind,
    versions: (u32, &[u32]),
    vault: &str,
) -> Result<VaultEngine, String> {
    let listed: Vec<String> = versions
        .1
        .iter()
        .map(|v| format!("{{ version = {v}, file = \"v{v}.key\" }}"))
        .collect();
    let config: VaultConfig = toml::from_str(&format!(
        "kind = \"{}\"\nkeys = {{ active = {}, versions = [{}] }}\n{vault}",
        kind.as_str(),
        versions.0,
        listed.join(", ")
    ))
    .map_err(|e| e.to_string())?;
    config.engine(&BuildContext::new(dir)).map_err(|e| e.0)
}

/// An engine of `kind` with key v1 active, from the vault settings `vault`.
fn build(dir: &Path, kind: ValueKind, vault: &str) -> VaultEngine {
    try_build(dir, kind, (1, &[1]), vault).unwrap()
}

/// Vault settings on a Redis key prefix of the test's own.
fn redis_settings(test: &str, extra: &str) -> (String, String) {
    let prefix = format!("corridor-test:vault:{test}:{:016x}", fastrand::u64(..));
    let settings = format!(
        "store = \"redis\"\n{extra}\nredis = {{ key_prefix = \"{prefix}\", timeout = \"2s\" }}"
    );
    (prefix, settings)
}

async fn redis_connection() -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open("redis://127.0.0.1:6379/0").unwrap();
    tokio::time::timeout(
        Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    .expect("Redis on 127.0.0.1:6379 answers in time")
    .expect("Redis runs on 127.0.0.1:6379 (start redis-server)")
}

/// The Redis keys under `prefix`.
async fn redis_keys(prefix: &str) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut redis_connection().await)
        .await
        .unwrap();
    keys.sort();
    keys
}

async fn clear_redis(prefix: &str) {
    let keys = redis_keys(prefix).await;
    if !keys.is_empty() {
        let () = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut redis_connection().await)
            .await
            .unwrap();
    }
}

fn redis_store(engine: &VaultEngine) -> &RedisStore {
    match &engine.store {
        Store::Redis(store) => store,
        Store::Redb(_) => panic!("not a Redis vault"),
    }
}

fn redb_store(engine: &VaultEngine) -> &RedbStore {
    match &engine.store {
        Store::Redb(store) => store,
        Store::Redis(_) => panic!("not a redb vault"),
    }
}

/// Tokenizes a value of each kind with `engine_for(kind)`, checks the token's format and
/// that it comes back as the value with key version 1.
async fn round_trips(engine_for: impl Fn(ValueKind) -> VaultEngine) {
    let cases = [
        (ValueKind::Pan, PAN),
        (ValueKind::Pan, "5500000000000004"),
        (ValueKind::Pan, "6759649826438453128"),
        (ValueKind::Iban, IBAN),
        (ValueKind::Iban, "DE89370400440532013000"),
        (ValueKind::Account, "0001234567"),
        (ValueKind::String, "Jane Q. Public, 1 rue de l'Église"),
    ];
    for (kind, value) in cases {
        let engine = engine_for(kind);
        let token = engine.tokenize(value).await.unwrap();
        assert_ne!(token, value);
        match kind {
            ValueKind::Pan => {
                assert_eq!(token.len(), value.len());
                assert!(token.bytes().all(|b| b.is_ascii_digit()), "{token}");
                assert_eq!(token[token.len() - 4..], value[value.len() - 4..]);
                assert!(
                    !format::luhn_valid(token.as_bytes()),
                    "{token} is Luhn-valid"
                );
            }
            ValueKind::Iban => {
                assert_eq!(token.len(), value.len());
                assert_eq!(token[..2], value[..2]);
                assert!(
                    ValueKind::Iban.is_value(&token),
                    "{token}: bad check digits"
                );
                for (t, v) in token.bytes().zip(value.bytes()).skip(4) {
                    assert_eq!(t.is_ascii_digit(), v.is_ascii_digit());
                    if v.is_ascii_uppercase() {
                        assert_eq!(t, v, "letters are kept");
                    }
                }
            }
            ValueKind::Account => {
                assert_eq!(token.len(), value.len());
                assert!(token.bytes().all(|b| b.is_ascii_digit()), "{token}");
            }
            ValueKind::String => {
                assert!(token.starts_with("tok_") && token.len() == 26, "{token}");
                assert!(token[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
            }
        }
        let back = engine.detokenize(&token).await.unwrap();
        assert_eq!(back.value, value);
        assert_eq!(back.key_version, 1);
    }
}

#[tokio::test]
async fn round_trip_every_kind_on_redb() {
    let dir = config_dir();
    round_trips(|kind| build(dir.path(), kind, "data_dir = \"vault\"")).await;
}

#[tokio::test]
async fn round_trip_every_kind_on_redis() {
    let dir = config_dir();
    let (prefix, settings) = redis_settings("round_trip", "");
    round_trips(|kind| build(dir.path(), kind, &settings)).await;
    clear_redis(&prefix).await;
}

#[tokio::test]
async fn random_unless_deterministic() {
    let dir = config_dir();
    let random = build(dir.path(), ValueKind::Pan, "data_dir = \"vault\"");
    let first = random.tokenize(PAN).await.unwrap();
    let second = random.tokenize(PAN).await.unwrap();
    assert_ne!(first, second);
    for token in [&first, &second] {
        assert_eq!(random.detokenize(token).await.unwrap().value, PAN);
    }

    let (prefix, redis) = redis_settings("deterministic", "deterministic = true");
    for settings in [
        "data_dir = \"vault\"\nnamespace = \"det\"\ndeterministic = true",
        redis.as_str(),
    ] {
        let engine = build(dir.path(), ValueKind::Pan, settings);
        let token = engine.tokenize(PAN).await.unwrap();
        assert_eq!(engine.tokenize(PAN).await.unwrap(), token, "{settings}");
        assert_ne!(token, first);
        assert_ne!(token, second);
        let other = engine.tokenize("5500000000000004").await.unwrap();
        assert_ne!(other, token);
        assert_eq!(engine.detokenize(&token).await.unwrap().value, PAN);
    }
    clear_redis(&prefix).await;
}

/// Tokenizes PAN 32 times at once, half with each engine: every call must get one token.
async fn tokenize_at_once(a: Arc<VaultEngine>, b: Arc<VaultEngine>) -> String {
    let calls: Vec<_> = (0..32)
        .map(|i| {
            let engine = Arc::clone(if i % 2 == 0 { &a } else { &b });
            tokio::spawn(async move { engine.tokenize(PAN).await.unwrap() })
        })
        .collect();
    let mut tokens = Vec::new();
    for call in calls {
        tokens.push(call.await.unwrap());
    }
    tokens.dedup();
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    tokens.pop().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deterministic_calls_make_one_token_on_redb() {
    let dir = config_dir();
    // Two rules of one process sharing the namespace (and the database).
    let settings = "data_dir = \"vault\"\ndeterministic = true";
    let a = Arc::new(build(dir.path(), ValueKind::Pan, settings));
    let b = Arc::new(build(dir.path(), ValueKind::Pan, settings));
    let token = tokenize_at_once(Arc::clone(&a), b).await;
    assert_eq!(a.detokenize(&token).await.unwrap().value, PAN);
    assert_eq!(redb_store(&a).counts().await, (1, 1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deterministic_calls_make_one_token_on_redis() {
    let dir = config_dir();
    let (prefix, settings) = redis_settings("concurrent", "deterministic = true");
    // Two instances: engines built apart, each with its own connection.
    let a = Arc::new(build(dir.path(), ValueKind::Pan, &settings));
    let b = Arc::new(build(dir.path(), ValueKind::Pan, &settings));
    let token = tokenize_at_once(a, b).await;
    let keys = redis_keys(&prefix).await;
    assert_eq!(keys.len(), 2, "one entry and one fingerprint: {keys:?}");
    assert_eq!(keys[1], format!("{prefix}:pan:t:{token}"));
    assert!(
        keys[0].starts_with(&format!("{prefix}:pan:f:1:")),
        "{keys:?}"
    );
    clear_redis(&prefix).await;
}

#[tokio::test]
async fn entries_expire_on_redb() {
    let dir = config_dir();
    let engine = build(
        dir.path(),
        ValueKind::Account,
        "data_dir = \"vault\"\ndeterministic = true\nttl = \"1s\"",
    );
    let token = engine.tokenize("0001234567").await.unwrap();
    assert_eq!(engine.tokenize("0001234567").await.unwrap(), token);
    assert_eq!(redb_store(&engine).counts().await, (1, 1, 1));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(engine.detokenize(&token).await, Err(TokenError::NotAToken));
    // The value gets a new token; that write removed the expired entry and its index.
    let renewed = engine.tokenize("0001234567").await.unwrap();
    assert_ne!(renewed, token);
    assert_eq!(redb_store(&engine).counts().await, (1, 1, 1));
    assert_eq!(
        engine.detokenize(&renewed).await.unwrap().value,
        "0001234567"
    );
}

#[tokio::test]
async fn entries_expire_on_redis() {
    let dir = config_dir();
    let (prefix, settings) = redis_settings("ttl", "deterministic = true\nttl = \"1s\"");
    let engine = build(dir.path(), ValueKind::String, &settings);
    let token = engine.tokenize("short-lived").await.unwrap();
    for key in redis_keys(&prefix).await {
        let ttl: i64 = redis_store(&engine).raw(redis::cmd("PTTL").arg(&key)).await;
        assert!((1..=1000).contains(&ttl), "{key}: {ttl}");
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(engine.detokenize(&token).await, Err(TokenError::NotAToken));
    assert!(redis_keys(&prefix).await.is_empty());
    assert_ne!(engine.tokenize("short-lived").await.unwrap(), token);
    clear_redis(&prefix).await;
}

#[tokio::test]
async fn rotation_keeps_old_entries_until_their_key_goes() {
    let dir = config_dir();
    let settings = "data_dir = \"vault\"\ndeterministic = true";
    let v1 = try_build(dir.path(), ValueKind::Pan, (1, &[1]), settings).unwrap();
    let old = v1.tokenize(PAN).await.unwrap();

    let v2 = try_build(dir.path(), ValueKind::Pan, (2, &[1, 2]), settings).unwrap();
    let back = v2.detokenize(&old).await.unwrap();
    assert_eq!((back.value.as_str(), back.key_version), (PAN, 1));
    // Deterministic across the rotation: found through its version 1 fingerprint.
    assert_eq!(v2.tokenize(PAN).await.unwrap(), old);
    let new = v2.tokenize("5500000000000004").await.unwrap();
    assert_eq!(v2.detokenize(&new).await.unwrap().key_version, 2);

    // Version 1 removed: its entries are gone for good, and the value gets a new token.
    let only_v2 = try_build(dir.path(), ValueKind::Pan, (2, &[2]), settings).unwrap();
    assert_eq!(only_v2.detokenize(&old).await, Err(TokenError::NotAToken));
    assert_eq!(
        only_v2.detokenize(&new).await.unwrap().value,
        "5500000000000004"
    );
    let renewed = only_v2.tokenize(PAN).await.unwrap();
    assert_ne!(renewed, old);
    assert_eq!(only_v2.detokenize(&renewed).await.unwrap().key_version, 2);
}

#[tokio::test]
async fn redb_entries_survive_a_restart() {
    let dir = config_dir();
    let settings = "data_dir = \"vault\"\ndeterministic = true";
    let engine = build(dir.path(), ValueKind::Iban, settings);
    let token = engine.tokenize(IBAN).await.unwrap();
    drop(engine);
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.path().join("vault")), 0o700);
    assert_eq!(mode(&dir.path().join("vault/vault.redb")), 0o600);
    // The last engine gone, the file is closed: another open of it succeeds.
    drop(redb::Database::create(dir.path().join("vault").join("vault.redb")).unwrap());

    let engine = build(dir.path(), ValueKind::Iban, settings);
    assert_eq!(engine.detokenize(&token).await.unwrap().value, IBAN);
    assert_eq!(engine.tokenize(IBAN).await.unwrap(), token);
}

#[tokio::test]
async fn a_rebuilt_engine_shares_the_database_with_the_old_one() {
    let dir = config_dir();
    let old = build(dir.path(), ValueKind::Pan, "data_dir = \"vault\"");
    let token = old.tokenize(PAN).await.unwrap();
    // A reload: the new runtime's engine works while the old one still holds the file,
    // through another spelling of the same directory.
    let new = build(
        dir.path(),
        ValueKind::Pan,
        "data_dir = \"./vault/../vault\"",
    );
    assert_eq!(new.detokenize(&token).await.unwrap().value, PAN);
    let newer = new.tokenize(PAN).await.unwrap();
    drop(new);
    assert_eq!(old.detokenize(&newer).await.unwrap().value, PAN);
}

#[tokio::test]
async fn two_instances_share_a_redis_vault() {
    let dir = config_dir();
    let (prefix, settings) = redis_settings("instances", "deterministic = true");
    let a = build(dir.path(), ValueKind::Iban, &settings);
    let b = build(dir.path(), ValueKind::Iban, &settings);
    let token = a.tokenize(IBAN).await.unwrap();
    assert_eq!(b.detokenize(&token).await.unwrap().value, IBAN);
    assert_eq!(b.tokenize(IBAN).await.unwrap(), token);
    clear_redis(&prefix).await;
}

#[tokio::test]
async fn namespaces_keep_entries_apart() {
    let dir = config_dir();
    let cards = build(
        dir.path(),
        ValueKind::Pan,
        "data_dir = \"vault\"\nnamespace = \"cards\"",
    );
    let others = build(
        dir.path(),
        ValueKind::Pan,
        "data_dir = \"vault\"\nnamespace = \"other\"",
    );
    let token = cards.tokenize(PAN).await.unwrap();
    assert_eq!(others.detokenize(&token).await, Err(TokenError::NotAToken));
    assert_eq!(cards.detokenize(&token).await.unwrap().value, PAN);
}

#[tokio::test]
async fn tampered_entries_fail_on_redb() {
    let dir = config_dir();
    let engine = build(dir.path(), ValueKind::String, "data_dir = \"vault\"");
    let store = redb_store(&engine);
    let first = engine.tokenize("first secret").await.unwrap();
    let second = engine.tokenize("second secret").await.unwrap();

    store
        .tamper(&first, |entry| *entry.last_mut().unwrap() ^= 1)
        .await;
    let failed = engine.detokenize(&first).await.unwrap_err();
    assert!(matches!(failed, TokenError::Unavailable(_)), "{failed:?}");

    // The second entry moved under the first token: bound to its own token, it fails.
    let moved = {
        let engine_entry = store.get(&second).await.unwrap().unwrap();
        move |entry: &mut Vec<u8>| *entry = engine_entry
    };
    store.tamper(&first, moved).await;
    let failed = engine.detokenize(&first).await.unwrap_err();
    assert!(matches!(failed, TokenError::Unavailable(_)), "{failed:?}");
    assert!(!failed.to_string().contains("secret"));
    assert_eq!(
        engine.detokenize(&second).await.unwrap().value,
        "second secret"
    );
}

#[tokio::test]
async fn tampered_entries_fail_on_redis() {
    let dir = config_dir();
    let (prefix, settings) = redis_settings("tamper", "");
    let engine = build(dir.path(), ValueKind::Account, &settings);
    let store = redis_store(&engine);
    let token = engine.tokenize("0001234567").await.unwrap();
    let key = store.token_key(&token);
    let mut entry: Vec<u8> = store.raw(redis::cmd("GET").arg(&key)).await;
    assert!(
        !entry.windows(10).any(|w| w == b"0001234567"),
        "stored in the clear"
    );
    entry[30] ^= 0x80;
    let () = store.raw(redis::cmd("SET").arg(&key).arg(&entry)).await;
    let failed = engine.detokenize(&token).await.unwrap_err();
    assert!(matches!(failed, TokenError::Unavailable(_)), "{failed:?}");
    clear_redis(&prefix).await;
}

#[tokio::test]
async fn values_and_tokens_are_checked_before_the_store() {
    let dir = config_dir();
    // A store that cannot be reached: none of these calls may need it.
    let pan = build(
        dir.path(),
        ValueKind::Pan,
        "store = \"redis\"\nredis = { url = \"redis://127.0.0.1:1/0\" }",
    );
    for value in ["4111111111111112", "4111-1111-1111-1111", "41111111111", ""] {
        assert_eq!(
            pan.tokenize(value).await,
            Err(TokenError::InvalidValue("pan"))
        );
    }
    // A real card is never a vault token.
    assert_eq!(pan.detokenize(PAN).await, Err(TokenError::NotAToken));
    let iban = build(
        dir.path(),
        ValueKind::Iban,
        "store = \"redis\"\nredis = { url = \"redis://127.0.0.1:1/0\" }",
    );
    assert_eq!(
        iban.tokenize("GB83WEST12345698765432").await,
        Err(TokenError::InvalidValue("iban"))
    );
    let string = build(
        dir.path(),
        ValueKind::String,
        "store = \"redis\"\nredis = { url = \"redis://127.0.0.1:1/0\" }",
    );
    let long = "x".repeat(MAX_VALUE_BYTES + 1);
    assert_eq!(
        string.tokenize(&long).await,
        Err(TokenError::InvalidValue("string"))
    );
    assert_eq!(
        string.detokenize("not-a-token").await,
        Err(TokenError::NotAToken)
    );
}

#[tokio::test]
async fn a_store_down_is_unavailable() {
    let dir = config_dir();
    let redis = build(
        dir.path(),
        ValueKind::Pan,
        "store = \"redis\"\nredis = { url = \"redis://127.0.0.1:1/0\", timeout = \"100ms\" }",
    );
    let started = std::time::Instant::now();
    assert!(matches!(
        redis.tokenize(PAN).await,
        Err(TokenError::Unavailable(_))
    ));
    assert!(matches!(
        redis.detokenize("4111111111111112").await,
        Err(TokenError::Unavailable(_))
    ));
    assert!(started.elapsed() < Duration::from_secs(2));

    // A data_dir that is a file: the database cannot be opened.
    std::fs::write(dir.path().join("not-a-dir"), "").unwrap();
    let redb = build(dir.path(), ValueKind::Pan, "data_dir = \"not-a-dir\"");
    assert!(matches!(
        redb.tokenize(PAN).await,
        Err(TokenError::Unavailable(_))
    ));
    assert!(matches!(
        redb.detokenize("4111111111111112").await,
        Err(TokenError::Unavailable(_))
    ));
}

/// A plain test: building needs no runtime, and opens and connects to nothing.
#[test]
fn building_needs_no_runtime_and_checks_the_settings() {
    let dir = config_dir();
    build(dir.path(), ValueKind::Pan, "data_dir = \"vault\"");
    assert!(
        !dir.path().join("vault").exists(),
        "built without touching the disk"
    );
    build(
        dir.path(),
        ValueKind::Pan,
        "store = \"redis\"\nredis = { url = \"redis://10.255.255.1:6379/0\" }",
    );
    for (settings, expected) in [
        ("", "data_dir is required"),
        (
            "data_dir = \"v\"\nredis = {}",
            "redis is only allowed with store = \"redis\"",
        ),
        (
            "store = \"redis\"\ndata_dir = \"v\"",
            "data_dir is only allowed",
        ),
        ("data_dir = \"v\"\nnamespace = \"a b\"", "namespace must be"),
        ("data_dir = \"v\"\nnamespace = \"\"", "namespace must be"),
        ("data_dir = \"v\"\nttl = \"500ms\"", "ttl must be"),
        (
            "store = \"redis\"\nredis = { url = \"redis://:hunter2@127.0.0.1/0\" }",
            "must not hold a password",
        ),
        (
            "store = \"redis\"\nredis = { url = \"http://x\" }",
            "must start with redis://",
        ),
        (
            "store = \"redis\"\nredis = { timeout = \"0s\" }",
            "timeout must be",
        ),
        ("data_dir = \"v\"\nstore = \"disk\"", "unknown variant"),
        ("data_dir = \"v\"\nsecret = 1", "unknown field"),
        (
            "data_dir = \"v\"\nnamespace = \"a b\"\nttl = \"500ms\"",
            "namespace must be",
        ),
        (
            "data_dir = \"v\"\nnamespace = \"a b\"\nttl = \"500ms\"",
            "ttl must be",
        ),
    ] {
        let err = try_build(dir.path(), ValueKind::Pan, (1, &[1]), settings).unwrap_err();
        assert!(err.contains(expected), "{settings}: {err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
    // A key missing, and a store option wrong: both told at once.
    let err = try_build(dir.path(), ValueKind::Pan, (3, &[3]), "").unwrap_err();
    assert!(
        err.contains("keys: version 3") && err.contains("data_dir is required"),
        "{err}"
    );
    // The public entry point, as the tokenize filter calls it.
    let config: VaultConfig = toml::from_str(
        "kind = \"iban\"\nkeys = { active = 1, versions = [{ version = 1, env = \"CORRIDOR_TEST_VAULT_KEY\" }] }\ndata_dir = \"vault\"",
    )
    .unwrap();
    std::env::set_var("CORRIDOR_TEST_VAULT_KEY", KEY_2);
    config.build(&BuildContext::new(dir.path())).unwrap();
}

#[tokio::test]
async fn nothing_shows_values_keys_or_passwords() {
    let dir = config_dir();
    std::fs::write(dir.path().join("redis-password"), "sesame-4242\n").unwrap();
    let engine = build(
        dir.path(),
        ValueKind::String,
        "store = \"redis\"\nredis = { url = \"redis://127.0.0.1:1/0\", password_file = \"redis-password\", timeout = \"50ms\" }",
    );
    let shown = format!("{engine:?}");
    assert!(!shown.contains("sesame"), "{shown}");
    assert!(!shown.contains(&KEY_1[..16]), "{shown}");
    let failed = engine.tokenize("my secret value").await.unwrap_err();
    let shown = format!("{failed} {failed:?}");
    assert!(
        !shown.contains("my secret") && !shown.contains("sesame"),
        "{shown}"
    );

    let redb = build(dir.path(), ValueKind::String, "data_dir = \"vault\"");
    let token = redb.tokenize("my secret value").await.unwrap();
    let back = redb.detokenize(&token).await.unwrap();
    let shown = format!("{back:?} {redb:?}");
    assert!(
        !shown.contains("my secret") && !shown.contains(&KEY_1[..16]),
        "{shown}"
    );
}
