//! Running a pipeline's commands on their shard: concurrently, in order,
//! without a heap block per batch that grows with the pipeline.
//!
//! `futures::future::join_all` would do, but it boxes all of a batch's
//! futures in one block. A command's future is a few kilobytes (the
//! largest command's state), so sixteen of them make a block of tens of
//! kilobytes per pipeline, one per connection in flight: the allocator
//! serves those from pages it hands back to the kernel when they empty,
//! and the next batch faults them in again. Here most commands finish on
//! their first poll (nothing to wait for), and their futures share one
//! slot, rewritten in place; only a command that has to wait keeps a
//! slot of its own.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

/// Runs `make(0) .. make(n - 1)` as `join_all` would: each future is
/// polled for the first time in index order, every one that is waiting
/// is polled again (in index order) on each wake-up, and the outputs come
/// back in index order. The order of first polls is what keeps a
/// pipeline's commands on one key in request order: each takes its key
/// locks (FIFO) on its first poll.
///
/// Before starting each future but the first, `offer()` is polled: the
/// executor's "yield if the time slice is used up". While it is pending
/// no further future starts, so a long pipeline offers the core between
/// commands, never inside one (a command that yielded holding its key
/// locks would queue every other client's commands on those keys behind
/// a task switch each: a convoy on a hot key).
pub async fn join_in_order<F, T, Y>(n: usize, mut make: impl FnMut(usize) -> F, mut offer: impl FnMut() -> Y) -> Vec<T>
where
    F: Future<Output = T>,
    Y: Future<Output = ()>,
{
    let mut outputs: Vec<Option<T>> = (0..n).map(|_| None).collect();
    // Futures that returned `Pending`, with their index, in index order.
    let mut waiting: Vec<(usize, Pin<Box<F>>)> = Vec::new();
    // A finished future's allocation, reused for the next one.
    let mut spare: Option<Pin<Box<F>>> = None;
    let mut started = 0;
    std::future::poll_fn(|cx| {
        // Re-poll the waiting ones before starting more, so that a wake-up
        // serves the earlier commands first, as join_all does.
        waiting.retain_mut(|(i, fut)| match fut.as_mut().poll(cx) {
            Poll::Ready(out) => {
                outputs[*i] = Some(out);
                false
            }
            Poll::Pending => true,
        });
        while started < n {
            if started > 0 {
                // A pending offer has scheduled this task to run again.
                let offered = std::pin::pin!(offer());
                if offered.poll(cx).is_pending() {
                    return Poll::Pending;
                }
            }
            let fut = make(started);
            let mut slot = match spare.take() {
                Some(mut slot) => {
                    slot.as_mut().set(fut);
                    slot
                }
                None => Box::pin(fut),
            };
            match slot.as_mut().poll(cx) {
                Poll::Ready(out) => {
                    outputs[started] = Some(out);
                    spare = Some(slot);
                }
                Poll::Pending => waiting.push((started, slot)),
            }
            started += 1;
        }
        if waiting.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|o| o.expect("every future ran to completion"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::join_in_order;
    use std::cell::RefCell;
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// Pending `n` times (waking itself each time), then ready.
    struct YieldTimes(usize);

    impl Future for YieldTimes {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.0 == 0 {
                return Poll::Ready(());
            }
            self.0 -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    #[test]
    fn outputs_keep_index_order_and_first_polls_run_in_index_order() {
        let events = RefCell::new(Vec::new());
        // Odd commands wait (odd) times; even ones finish at once.
        let out = futures::executor::block_on(join_in_order(
            7,
            |i| {
                let events = &events;
                async move {
                    events.borrow_mut().push(format!("start {i}"));
                    YieldTimes(i % 2 * i).await;
                    events.borrow_mut().push(format!("end {i}"));
                    i * 10
                }
            },
            || async {},
        ));
        assert_eq!(out, vec![0, 10, 20, 30, 40, 50, 60]);
        let events = events.into_inner();
        let starts: Vec<&String> = events.iter().filter(|e| e.starts_with("start")).collect();
        let expected: Vec<String> = (0..7).map(|i| format!("start {i}")).collect();
        assert_eq!(starts, expected.iter().collect::<Vec<_>>());
        // Every command started before any waiting one finished: they ran
        // concurrently, as a batch's writes must to share a group commit.
        let first_waiting_end = events.iter().position(|e| e == "end 1").expect("command 1 ends");
        let last_start = events.iter().position(|e| e == "start 6").expect("command 6 starts");
        assert!(last_start < first_waiting_end, "{events:?}");
    }

    #[test]
    fn nothing_to_run_is_ready_at_once() {
        let out: Vec<u8> = futures::executor::block_on(join_in_order(0, |_| async { 1u8 }, || async {}));
        assert!(out.is_empty());
    }

    #[test]
    fn every_futures_state_is_dropped_when_its_slot_is_reused_or_freed() {
        use std::rc::Rc;
        let token = Rc::new(());
        let out = futures::executor::block_on(join_in_order(
            5,
            |i| {
                let held = token.clone();
                async move {
                    let _held = held;
                    i
                }
            },
            || async {},
        ));
        assert_eq!(out, vec![0, 1, 2, 3, 4]);
        assert_eq!(Rc::strong_count(&token), 1, "every future's state was dropped");
    }

    #[test]
    fn a_pending_offer_stops_starting_commands_until_it_is_ready() {
        use std::cell::Cell;
        let events = RefCell::new(Vec::new());
        let offers = Cell::new(0);
        let out = futures::executor::block_on(join_in_order(
            4,
            |i| {
                events.borrow_mut().push(format!("start {i}"));
                async move { i }
            },
            || {
                offers.set(offers.get() + 1);
                // The second offer (before command 2) is pending once.
                let pending = offers.get() == 2;
                events
                    .borrow_mut()
                    .push(format!("offer {}", if pending { "pending" } else { "ready" }));
                YieldTimes(usize::from(pending))
            },
        ));
        assert_eq!(out, vec![0, 1, 2, 3]);
        assert_eq!(
            events.into_inner(),
            [
                "start 0",
                "offer ready",
                "start 1",
                "offer pending",
                "offer ready",
                "start 2",
                "offer ready",
                "start 3"
            ]
        );
    }
}
