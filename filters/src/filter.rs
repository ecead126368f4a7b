//! The [`Filter`] trait: one method per proxy phase, each with a do-nothing default.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use crate::{Problem, RequestContext, RequestHead, ResponseHead};

/// What a phase decides: go on, or answer the client now.
#[derive(Debug)]
pub enum Flow {
    /// Continue with the next filter, then the next phase.
    Continue,
    /// Stop here and send this reply instead of (or in place of) the upstream's answer.
    Respond(Reply),
}

impl Flow {
    /// Answer with an RFC 9457 problem; the gateway adds the request id when it renders it.
    pub fn reject(problem: Problem) -> Self {
        Flow::Respond(Reply::problem(problem))
    }
}

/// A reply made by a filter: a plain response, or a problem the gateway renders as
/// `application/problem+json`.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Set when the reply is a problem; the gateway renders the body from it.
    pub problem: Option<Problem>,
}

impl Reply {
    /// A reply with a status and no body (e.g. a CORS preflight's 204).
    pub fn empty(status: StatusCode) -> Self {
        Reply {
            status,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            problem: None,
        }
    }

    /// A problem reply; its body is rendered by the gateway, which knows the request id.
    pub fn problem(problem: Problem) -> Self {
        Reply {
            status: problem.status,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            problem: Some(problem),
        }
    }
}

/// What a filter may use while it is built from its config.
#[derive(Debug, Clone, Default)]
pub struct BuildContext {
    /// Directory of the config file that declared the filter: relative paths (key files,
    /// JWKS files) are resolved against it.
    pub base_dir: PathBuf,
    /// Files read through [`BuildContext::read_file`], with their contents.
    files_read: Arc<Mutex<Vec<FileRead>>>,
}

/// A file a filter read while it was built: the path as resolved, and its contents.
pub type FileRead = (PathBuf, Vec<u8>);

impl BuildContext {
    pub fn new(base_dir: impl Into<PathBuf>) -> Self {
        BuildContext {
            base_dir: base_dir.into(),
            files_read: Arc::default(),
        }
    }

    /// A path from config, resolved against [`BuildContext::base_dir`].
    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.base_dir.join(path)
    }

    /// Reads a file a filter's config names (key files, JWKS, CA bundles). Filters read their
    /// files through this, never directly: the gateway then knows them, so a changed file is
    /// a new config version and rebuilds the filter on the next reload. The error names the
    /// file as resolved, never its contents.
    pub fn read_file(&self, path: &Path) -> Result<Vec<u8>, String> {
        let full = self.resolve(path);
        let contents =
            std::fs::read(&full).map_err(|e| format!("cannot read {}: {e}", full.display()))?;
        self.files_read
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push((full, contents.clone()));
        Ok(contents)
    }

    /// [`BuildContext::read_file`] for text files.
    pub fn read_text_file(&self, path: &Path) -> Result<String, String> {
        String::from_utf8(self.read_file(path)?)
            .map_err(|_| format!("{} is not UTF-8 text", self.resolve(path).display()))
    }

    /// The files read so far, with their contents, in the order they were read.
    pub fn files_read(&self) -> Vec<FileRead> {
        self.files_read
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// A filter's config was understood but cannot be built (bad regex, unreadable file...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(pub String);

/// One step of a route's chain. Every phase has a default that continues untouched, so a
/// filter implements only the phases it cares about.
///
/// Request phases run in chain order; response phases in reverse. When a request phase
/// answers with [`Flow::Respond`], the filters before it still see that reply in
/// [`Filter::on_response`] (so CORS and request-id headers reach rejected calls too), and the
/// upstream is never called.
#[async_trait]
pub trait Filter: Send + Sync + 'static {
    /// Short stable name, used in logs and metrics (e.g. `"cors"`).
    fn name(&self) -> &'static str;

    /// The largest request body this filter allows, enforced by the gateway while the body
    /// streams (413 past it) whether or not the body is buffered.
    fn request_body_limit(&self) -> Option<u64> {
        None
    }

    /// Whether this filter needs the whole request body in [`Filter::on_request_body`].
    /// Bodies are buffered only when some filter of the chain says yes.
    fn wants_request_body(&self) -> bool {
        false
    }

    /// Whether this filter needs the whole response body in [`Filter::on_response_body`].
    fn wants_response_body(&self) -> bool {
        false
    }

    /// The request head arrived: inspect, change, or answer it.
    /// Default: continue unchanged.
    async fn on_request(&self, _req: &mut dyn RequestHead, _ctx: &mut RequestContext) -> Flow {
        Flow::Continue
    }

    /// The whole request body, buffered because some filter asked for it. A filter may
    /// replace it; the gateway sets Content-Length to the final size.
    /// Default: continue unchanged.
    async fn on_request_body(
        &self,
        _req: &mut dyn RequestHead,
        _body: &mut Bytes,
        _ctx: &mut RequestContext,
    ) -> Flow {
        Flow::Continue
    }

    /// The response head, from the upstream or from a filter's reply. `req` is the request
    /// as the client sent it (e.g. for its Origin).
    /// Default: continue unchanged.
    async fn on_response(
        &self,
        _req: &dyn RequestHead,
        _resp: &mut dyn ResponseHead,
        _ctx: &mut RequestContext,
    ) -> Flow {
        Flow::Continue
    }

    /// The whole response body, buffered because some filter asked for it; the head has not
    /// been sent yet, so the filter may still change status and headers.
    /// Default: continue unchanged.
    async fn on_response_body(
        &self,
        _resp: &mut dyn ResponseHead,
        _body: &mut Bytes,
        _ctx: &mut RequestContext,
    ) -> Flow {
        Flow::Continue
    }
}
