//! The embedded store: a redb database, `vault.redb` in the rule's `data_dir`, three tables
//! per namespace.
//!
//! | table | key | value |
//! | --- | --- | --- |
//! | `vault/{namespace}/tokens` | token | sealed entry |
//! | `vault/{namespace}/fingerprints` | key version byte, HMAC (33 bytes) | expiry (8 bytes, big-endian ms), token |
//! | `vault/{namespace}/expiry` | (expiry ms, token) | the entry's fingerprint key, or nothing |
//!
//! redb refuses to open a file twice, even within one process. A reload builds the new
//! engines while the old runtime still holds theirs, and several rules may share a
//! `data_dir`, so databases are opened once per canonical path and shared through a
//! process-wide registry (the one `static` here is there because the file lock is
//! process-wide too). The last user closes the database with the registry locked, so a
//! new open of the same path never finds the old one still holding the file.
//!
//! The database is opened on first use, not when the config is built: `corridor check`
//! then never touches a data directory a running gateway holds. Failed opens are retried
//! on the next call, so a gateway started while an old process still holds the file
//! answers 503 until the old one exits, then works.
//!
//! The directory is created 0700 if missing, and the database file 0600: entries are
//! sealed, but tokens and the index are not for everyone to read.
//!
//! Every commit is durable (redb's default, an fsync) before the token is handed out: a
//! token whose entry was lost could never be detokenized. Writes are serialized by redb, so
//! "insert if absent" and the fingerprint check are atomic within one write transaction.
//! Calls run on tokio's blocking pool, as they wait on the disk.

use std::collections::btree_map::{BTreeMap, Entry};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableError};
use tokio::sync::OnceCell;

use super::crypto::Fingerprint;
use super::{Mint, MAX_ATTEMPTS};
use crate::tokenize::TokenError;

const FILE_NAME: &str = "vault.redb";
/// Expired entries removed by each write, at most: removal keeps pace with insertion
/// without making any one write slow.
const CLEANUP_BATCH: usize = 16;

type Tokens<'a> = TableDefinition<'a, &'static str, &'static [u8]>;
type Fingerprints<'a> = TableDefinition<'a, &'static [u8], &'static [u8]>;
type Expiry<'a> = TableDefinition<'a, (u64, &'static str), &'static [u8]>;

/// Databases open in this process, by canonical file path.
static OPEN: Mutex<BTreeMap<PathBuf, Shared>> = Mutex::new(BTreeMap::new());

struct Shared {
    db: Arc<Database>,
    leases: usize,
}

fn registry() -> MutexGuard<'static, BTreeMap<PathBuf, Shared>> {
    OPEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One user's hold on a shared database; the last one dropped closes it.
struct Lease {
    path: PathBuf,
    /// Always set; taken only by `drop`, to close the database inside the registry lock.
    db: Option<Arc<Database>>,
}

impl Lease {
    /// Creates `dir` if needed and opens (or shares) its database.
    fn take(dir: &Path) -> Result<Lease, String> {
        // Owner-only, like any store of card data, even sealed: directories this creates are
        // 0700 and a new database file 0600 (redb fills an empty file).
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create the directory: {e}"))?;
        let path = dir
            .canonicalize()
            .map_err(|e| format!("cannot resolve the directory: {e}"))?
            .join(FILE_NAME);
        let mut open = registry();
        let shared = match open.entry(path.clone()) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(|e| format!("cannot create the database file: {e}"))?;
                entry.insert(Shared {
                    db: Arc::new(Database::create(&path).map_err(|e| e.to_string())?),
                    leases: 0,
                })
            }
        };
        shared.leases += 1;
        Ok(Lease {
            db: Some(Arc::clone(&shared.db)),
            path,
        })
    }

    fn db(&self) -> &Database {
        self.db
            .as_deref()
            .expect("a lease holds its database until dropped")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut open = registry();
        let db = self.db.take();
        if let Some(shared) = open.get_mut(&self.path) {
            shared.leases -= 1;
            if shared.leases == 0 {
                open.remove(&self.path);
            }
        }
        // The last reference goes here, with the registry still locked.
        drop(db);
    }
}

/// Names of a namespace's tables.
struct Tables {
    tokens: String,
    fingerprints: String,
    expiry: String,
}

impl Tables {
    fn tokens(&self) -> Tokens<'_> {
        TableDefinition::new(&self.tokens)
    }
    fn fingerprints(&self) -> Fingerprints<'_> {
        TableDefinition::new(&self.fingerprints)
    }
    fn expiry(&self) -> Expiry<'_> {
        TableDefinition::new(&self.expiry)
    }
}

pub(super) struct RedbStore {
    /// `data_dir`, resolved against the config file's directory.
    dir: PathBuf,
    tables: Arc<Tables>,
    lease: OnceCell<Arc<Lease>>,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore").field("dir", &self.dir).finish()
    }
}

/// Outcome of a blocking call: a redb failure, or the engine's own answer.
type Blocking<T> = Result<Result<T, TokenError>, redb::Error>;

impl RedbStore {
    pub(super) fn new(dir: PathBuf, namespace: &str) -> Self {
        RedbStore {
            dir,
            tables: Arc::new(Tables {
                tokens: format!("vault/{namespace}/tokens"),
                fingerprints: format!("vault/{namespace}/fingerprints"),
                expiry: format!("vault/{namespace}/expiry"),
            }),
            lease: OnceCell::new(),
        }
    }

    /// The sealed entry of `token`, expired or not (the engine checks the expiry it seals).
    pub(super) async fn get(&self, token: &str) -> Result<Option<Vec<u8>>, TokenError> {
        let token = token.to_owned();
        self.run(move |db, tables| {
            let txn = db.begin_read()?;
            let table = match txn.open_table(tables.tokens()) {
                Ok(table) => table,
                Err(TableError::TableDoesNotExist(_)) => return Ok(Ok(None)),
                Err(e) => return Err(e.into()),
            };
            let entry = table.get(token.as_str())?.map(|e| e.value().to_vec());
            Ok(Ok(entry))
        })
        .await
    }

    /// A new entry from `mint` under an unused token, or, when `fingerprints` (deterministic
    /// mode, active version first) find an unexpired entry, that entry's token.
    pub(super) async fn insert(
        &self,
        mint: Mint,
        fingerprints: Vec<Fingerprint>,
    ) -> Result<String, TokenError> {
        self.run(move |db, tables| {
            if !fingerprints.is_empty() {
                // Most calls for a known value end here, without a write.
                let txn = db.begin_read()?;
                match txn.open_table(tables.fingerprints()) {
                    Ok(table) => {
                        if let Some(token) = find(&table, &fingerprints, mint.now)? {
                            return Ok(Ok(token));
                        }
                    }
                    Err(TableError::TableDoesNotExist(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let txn = db.begin_write()?;
            let token = {
                let mut tokens = txn.open_table(tables.tokens())?;
                let mut index = txn.open_table(tables.fingerprints())?;
                let mut expiry = txn.open_table(tables.expiry())?;
                remove_expired(&mut tokens, &mut index, &mut expiry, mint.now)?;
                // Again, inside the write: another call may have indexed the value meanwhile.
                if let Some(token) = find(&index, &fingerprints, mint.now)? {
                    token
                } else {
                    let mut attempts = 0;
                    let (token, entry) = loop {
                        let (token, entry) = match mint.next() {
                            Ok(made) => made,
                            Err(e) => return Ok(Err(e)),
                        };
                        if tokens.get(token.as_str())?.is_none() {
                            break (token, entry);
                        }
                        attempts += 1;
                        if attempts == MAX_ATTEMPTS {
                            return Ok(Err(super::no_free_token()));
                        }
                    };
                    tokens.insert(token.as_str(), entry.as_slice())?;
                    let fingerprint = fingerprints.first().map(Fingerprint::to_bytes);
                    if let Some(key) = &fingerprint {
                        let mut indexed = mint.expires_at.to_be_bytes().to_vec();
                        indexed.extend_from_slice(token.as_bytes());
                        index.insert(key.as_slice(), indexed.as_slice())?;
                    }
                    if mint.expires_at != 0 {
                        let key = fingerprint.as_ref().map_or(&[][..], |k| k.as_slice());
                        expiry.insert((mint.expires_at, token.as_str()), key)?;
                    }
                    token
                }
            };
            txn.commit()?;
            Ok(Ok(token))
        })
        .await
    }

    /// Runs `work` on the blocking pool against the database, opening it first if needed.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database, &Tables) -> Blocking<T> + Send + 'static,
    ) -> Result<T, TokenError> {
        let lease = self
            .lease
            .get_or_try_init(|| {
                let dir = self.dir.clone();
                async move {
                    let taken = tokio::task::spawn_blocking(move || Lease::take(&dir)).await;
                    match taken {
                        Ok(Ok(lease)) => Ok(Arc::new(lease)),
                        Ok(Err(why)) => Err(why),
                        Err(e) => Err(e.to_string()),
                    }
                }
            })
            .await
            .map_err(|why| {
                tracing::warn!(dir = %self.dir.display(), error = %why, "vault: cannot open the store");
                TokenError::Unavailable("vault store cannot be opened".into())
            })?;
        let lease = Arc::clone(lease);
        let tables = Arc::clone(&self.tables);
        match tokio::task::spawn_blocking(move || work(lease.db(), &tables)).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(e)) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "vault: store failed");
                Err(TokenError::Unavailable("vault store failed".into()))
            }
            Err(e) => {
                tracing::warn!(error = %e, "vault: store task failed");
                Err(TokenError::Unavailable("vault store failed".into()))
            }
        }
    }
}

/// The token of the first fingerprint indexed and unexpired at `now`.
fn find(
    index: &impl ReadableTable<&'static [u8], &'static [u8]>,
    fingerprints: &[Fingerprint],
    now: u64,
) -> Result<Option<String>, redb::Error> {
    for fingerprint in fingerprints {
        let Some(found) = index.get(fingerprint.to_bytes().as_slice())? else {
            continue;
        };
        let found = found.value();
        let Some((expiry, token)) = found.split_first_chunk::<8>() else {
            continue;
        };
        let expiry = u64::from_be_bytes(*expiry);
        if expiry == 0 || expiry > now {
            if let Ok(token) = std::str::from_utf8(token) {
                return Ok(Some(token.to_owned()));
            }
        }
    }
    Ok(None)
}

/// Removes up to [`CLEANUP_BATCH`] entries expired at `now`, with their fingerprints when
/// those still point at them.
fn remove_expired(
    tokens: &mut redb::Table<'_, &'static str, &'static [u8]>,
    index: &mut redb::Table<'_, &'static [u8], &'static [u8]>,
    expiry: &mut redb::Table<'_, (u64, &'static str), &'static [u8]>,
    now: u64,
) -> Result<(), redb::Error> {
    let mut expired = Vec::new();
    for item in expiry.range(..(now + 1, ""))?.take(CLEANUP_BATCH) {
        let (key, fingerprint) = item?;
        let (at, token) = key.value();
        expired.push((at, token.to_owned(), fingerprint.value().to_vec()));
    }
    for (at, token, fingerprint) in expired {
        expiry.remove((at, token.as_str()))?;
        tokens.remove(token.as_str())?;
        if fingerprint.is_empty() {
            continue;
        }
        let points_here = index
            .get(fingerprint.as_slice())?
            .is_some_and(|v| v.value().get(8..) == Some(token.as_bytes()));
        if points_here {
            index.remove(fingerprint.as_slice())?;
        }
    }
    Ok(())
}

#[cfg(test)]
impl RedbStore {
    /// Rewrites the stored entry of `token` (which must exist) with `change`.
    pub(super) async fn tamper(
        &self,
        token: &str,
        change: impl FnOnce(&mut Vec<u8>) + Send + 'static,
    ) {
        let token = token.to_owned();
        self.run(move |db, tables| {
            let txn = db.begin_write()?;
            {
                let mut table = txn.open_table(tables.tokens())?;
                let mut entry = table.get(token.as_str())?.unwrap().value().to_vec();
                change(&mut entry);
                table.insert(token.as_str(), entry.as_slice())?;
            }
            txn.commit()?;
            Ok(Ok(()))
        })
        .await
        .unwrap();
    }

    /// Entries in the tokens, fingerprints and expiry tables.
    pub(super) async fn counts(&self) -> (u64, u64, u64) {
        use redb::ReadableTableMetadata;
        self.run(|db, tables| {
            let txn = db.begin_read()?;
            Ok(Ok((
                txn.open_table(tables.tokens())?.len()?,
                txn.open_table(tables.fingerprints())?.len()?,
                txn.open_table(tables.expiry())?.len()?,
            )))
        })
        .await
        .unwrap()
    }
}
