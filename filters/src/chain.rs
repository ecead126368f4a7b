//! A built chain: its filters in order, and whether any of them needs whole bodies.

use std::sync::Arc;

use bytes::Bytes;

use crate::{Filter, Flow, RequestContext, RequestHead, ResponseHead};

/// The filters of one named chain, ready to run. Request phases run front to back; response
/// phases back to front, like layers around the upstream call.
#[derive(Clone, Default)]
pub struct Chain {
    filters: Vec<Arc<dyn Filter>>,
    wants_request_body: bool,
    wants_response_body: bool,
    request_body_limit: Option<u64>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.filters.iter().map(|x| x.name()).collect();
        f.debug_struct("Chain").field("filters", &names).finish()
    }
}

impl Chain {
    pub fn new(filters: Vec<Arc<dyn Filter>>) -> Self {
        let wants_request_body = filters.iter().any(|f| f.wants_request_body());
        let wants_response_body = filters.iter().any(|f| f.wants_response_body());
        let request_body_limit = filters.iter().filter_map(|f| f.request_body_limit()).min();
        Chain {
            filters,
            wants_request_body,
            wants_response_body,
            request_body_limit,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    pub fn len(&self) -> usize {
        self.filters.len()
    }

    /// Some filter needs the whole request body: the gateway buffers it (with a cap).
    pub fn wants_request_body(&self) -> bool {
        self.wants_request_body
    }

    /// Some filter needs the whole response body: the gateway buffers it (with a cap).
    pub fn wants_response_body(&self) -> bool {
        self.wants_response_body
    }

    /// The smallest request body limit of the chain's filters, if any sets one.
    pub fn request_body_limit(&self) -> Option<u64> {
        self.request_body_limit
    }

    /// Runs the request-head phase in order. On a reply, returns how many filters ran before
    /// the one that answered, so only those see the reply on the way back.
    pub async fn on_request(
        &self,
        req: &mut dyn RequestHead,
        ctx: &mut RequestContext,
    ) -> Result<(), Stopped> {
        for (index, filter) in self.filters.iter().enumerate() {
            if let Flow::Respond(reply) = filter.on_request(req, ctx).await {
                return Err(Stopped {
                    reply,
                    by: filter.name(),
                    upto: index,
                });
            }
        }
        Ok(())
    }

    /// Runs the whole-request-body phase in order.
    pub async fn on_request_body(
        &self,
        req: &mut dyn RequestHead,
        body: &mut Bytes,
        ctx: &mut RequestContext,
    ) -> Result<(), Stopped> {
        for (index, filter) in self.filters.iter().enumerate() {
            if let Flow::Respond(reply) = filter.on_request_body(req, body, ctx).await {
                return Err(Stopped {
                    reply,
                    by: filter.name(),
                    upto: index,
                });
            }
        }
        Ok(())
    }

    /// Runs the response-head phase in reverse, over the first `upto` filters (all of them
    /// for an upstream's answer). A filter's reply replaces the response; the filters before
    /// it still run over the reply.
    pub async fn on_response(
        &self,
        req: &dyn RequestHead,
        resp: &mut dyn ResponseHead,
        ctx: &mut RequestContext,
        upto: usize,
    ) -> Option<Stopped> {
        let mut replaced = None;
        for (index, filter) in self.filters[..upto].iter().enumerate().rev() {
            if let Flow::Respond(reply) = filter.on_response(req, resp, ctx).await {
                replaced = Some(Stopped {
                    reply,
                    by: filter.name(),
                    upto: index,
                });
                break;
            }
        }
        replaced
    }

    /// Runs the whole-response-body phase in reverse.
    pub async fn on_response_body(
        &self,
        resp: &mut dyn ResponseHead,
        body: &mut Bytes,
        ctx: &mut RequestContext,
    ) -> Result<(), Stopped> {
        for (index, filter) in self.filters.iter().enumerate().rev() {
            if let Flow::Respond(reply) = filter.on_response_body(resp, body, ctx).await {
                return Err(Stopped {
                    reply,
                    by: filter.name(),
                    upto: index,
                });
            }
        }
        Ok(())
    }
}

/// A filter answered the client itself.
#[derive(Debug)]
pub struct Stopped {
    pub reply: crate::Reply,
    /// Name of the filter that answered (for metrics and the access log).
    pub by: &'static str,
    /// The filters before index `upto` get to see the reply in their response phase.
    pub upto: usize,
}
