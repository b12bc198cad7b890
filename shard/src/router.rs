//! Cross-shard requests: typed messages over bounded queues.
//!
//! Every pair of shards is joined by two bounded single-producer queues
//! (glommio channel meshes): one carries requests, the other the answers.
//! A caller on shard A asks shard B with [`Router::call`]: the request is
//! stamped with a per-shard id, sent, and the caller waits on a local slot
//! that A's answer loop fills when B's answer arrives. Nothing is shared
//! between the cores but the queues themselves.
//!
//! Backpressure, not buffering: a full request queue makes `call` wait,
//! so a connection task that calls stops reading its socket. On the
//! receiving side at most `xcore_queue_depth` requests per peer run at
//! once; past that the receive loop stops draining, the queue fills and
//! the senders wait in turn. Requests that may wait a long time on
//! purpose (a blocking list pop) are marked by [`Service::is_long`] and
//! run outside that budget, so they can never starve ordinary traffic.
//!
//! Deadlock freedom: the loops that drain queues never wait on anything
//! but their own queue (requests run in their own tasks; answers only
//! fill local slots), so every queue is always eventually drained.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;

use futures_lite::StreamExt;
use glommio::channels::channel_mesh::{Receivers, Senders};
use glommio::sync::Semaphore;
use lumadb_engine::sync::Slot;

/// Per-shard state that answers cross-shard requests: the protocol layer
/// implements it; the router carries its messages.
pub trait Service: 'static {
    /// What one shard asks another. Owned, `Send`: it crosses cores.
    type Request: Send + 'static;
    /// The answer.
    type Response: Send + 'static;

    /// Runs `request` on this shard.
    fn handle(self: Rc<Self>, request: Self::Request) -> impl Future<Output = Self::Response> + 'static;

    /// Whether `request` may wait a long time on purpose (blocking pops):
    /// such requests do not count against the receiver's budget.
    fn is_long(_request: &Self::Request) -> bool {
        false
    }
}

/// A request on the wire: who asked, and the id its answer carries back.
pub struct RequestEnvelope<Q> {
    from: usize,
    id: u64,
    long: bool,
    body: Q,
}

/// An answer on the wire.
pub struct ResponseEnvelope<R> {
    id: u64,
    body: R,
}

/// Why a cross-shard call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("shard {0} does not exist")]
    NoSuchShard(usize),
    #[error("shard {0} is shutting down")]
    Closed(usize),
}

/// One shard's end of the request/answer meshes.
pub struct Router<S: Service> {
    shard: usize,
    shards: usize,
    requests: Senders<RequestEnvelope<S::Request>>,
    responses: Senders<ResponseEnvelope<S::Response>>,
    waiting: RefCell<HashMap<u64, Rc<Slot<S::Response>>>>,
    next_id: Cell<u64>,
    service: RefCell<Option<Rc<S>>>,
    /// Requests sent to other shards that have not been answered yet.
    in_flight: Cell<u64>,
    /// Requests sent to other shards, ever.
    sent_total: Cell<u64>,
}

impl<S: Service> Router<S> {
    /// Builds this shard's router from its ends of the two meshes.
    pub fn new(
        requests: Senders<RequestEnvelope<S::Request>>,
        responses: Senders<ResponseEnvelope<S::Response>>,
    ) -> Rc<Self> {
        let shard = requests.peer_id();
        let shards = requests.nr_consumers();
        assert_eq!(responses.peer_id(), shard);
        assert_eq!(responses.nr_consumers(), shards);
        Rc::new(Router {
            shard,
            shards,
            requests,
            responses,
            waiting: RefCell::new(HashMap::new()),
            next_id: Cell::new(0),
            service: RefCell::new(None),
            in_flight: Cell::new(0),
            sent_total: Cell::new(0),
        })
    }

    /// This shard's index.
    pub fn shard(&self) -> usize {
        self.shard
    }

    /// How many shards the process runs.
    pub fn shards(&self) -> usize {
        self.shards
    }

    /// Requests sent to other shards and not yet answered.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.get()
    }

    /// Requests sent to other shards since start.
    pub fn sent_total(&self) -> u64 {
        self.sent_total.get()
    }

    fn service(&self) -> Rc<S> {
        self.service
            .borrow()
            .clone()
            .expect("the router serves before any request is routed")
    }

    /// Runs `request` on `shard` and returns its answer: directly when
    /// `shard` is this one, over the queues otherwise.
    pub async fn call(&self, shard: usize, request: S::Request) -> Result<S::Response, CallError> {
        if shard >= self.shards {
            return Err(CallError::NoSuchShard(shard));
        }
        if shard == self.shard {
            return Ok(self.service().handle(request).await);
        }
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let slot = Slot::new();
        self.waiting.borrow_mut().insert(id, slot.clone());
        let envelope = RequestEnvelope {
            from: self.shard,
            id,
            long: S::is_long(&request),
            body: request,
        };
        self.in_flight.set(self.in_flight.get() + 1);
        self.sent_total.set(self.sent_total.get() + 1);
        let _guard = InFlight(&self.in_flight);
        if self.requests.send_to(shard, envelope).await.is_err() {
            self.waiting.borrow_mut().remove(&id);
            return Err(CallError::Closed(shard));
        }
        // If this future is dropped while waiting, the answer finds no
        // slot and is discarded; the request itself still runs.
        let answer = slot.wait().await;
        Ok(answer)
    }

    /// Starts serving: spawns this shard's receive loops for requests from
    /// and answers to every peer. `budget` is how many requests from one
    /// peer may run at once.
    pub fn serve(
        self: &Rc<Self>,
        service: Rc<S>,
        mut requests: Receivers<RequestEnvelope<S::Request>>,
        mut responses: Receivers<ResponseEnvelope<S::Response>>,
        budget: usize,
    ) {
        assert!(budget > 0);
        *self.service.borrow_mut() = Some(service.clone());
        for (peer, mut stream) in requests.streams() {
            let router = self.clone();
            let service = service.clone();
            let permits = Rc::new(Semaphore::new(budget as u64));
            glommio::spawn_local(async move {
                while let Some(envelope) = stream.next().await {
                    assert_eq!(envelope.from, peer);
                    let permit = if envelope.long {
                        None
                    } else {
                        match permits.acquire_static_permit(1).await {
                            Ok(p) => Some(p),
                            Err(_) => break,
                        }
                    };
                    let router = router.clone();
                    let service = service.clone();
                    glommio::spawn_local(async move {
                        let body = service.handle(envelope.body).await;
                        let answer = ResponseEnvelope { id: envelope.id, body };
                        // Fails only when the peer has shut down.
                        let _ = router.responses.send_to(envelope.from, answer).await;
                        drop(permit);
                    })
                    .detach();
                }
            })
            .detach();
        }
        for (_peer, mut stream) in responses.streams() {
            let router = self.clone();
            glommio::spawn_local(async move {
                while let Some(answer) = stream.next().await {
                    let slot = router.waiting.borrow_mut().remove(&answer.id);
                    if let Some(slot) = slot {
                        slot.set(answer.body);
                    }
                }
            })
            .detach();
        }
    }

    /// Closes this shard's sending ends (at shutdown).
    pub fn close(&self) {
        self.requests.close();
        self.responses.close();
    }
}

struct InFlight<'a>(&'a Cell<u64>);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}
