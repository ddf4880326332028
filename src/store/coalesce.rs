//! A [`Db`] that lets many writes share round trips: POST /Bulk runs the operations of a
//! wave concurrently ([`Db::drive`]), each through its single-request code, and whenever all
//! of them wait on the database their batches go to D1 as one batch, in operation order.
//! Outside `drive` every batch goes straight through. The Worker wraps D1 in it for every
//! request, so the handlers are compiled once, for one database type (a second type would
//! duplicate them all in the wasm).
//!
//! One merged batch is exactly the member batches run one after the other (same statements,
//! same order, nothing in between), except that it is all-or-nothing: if it fails, it is split
//! in halves and each half retried, down to the single batch that fails, which gets its own
//! error. A wave with one failing write among n costs about 2·log2(n) extra round trips, and
//! every other write still applies as if it had run alone.

use crate::store::sql::Stmt;
use crate::store::{Db, DbError, Row};
use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;

type Outcome = Result<Vec<Vec<Row>>, DbError>;

/// A batch waiting for the next flush, and where its result goes.
struct Queued {
    stmts: Vec<Stmt>,
    slot: Rc<RefCell<Option<Outcome>>>,
}

/// Most statements sent in one merged round trip (a created user is two or three), so a
/// merged batch stays a modest D1 request.
pub const MAX_STATEMENTS_PER_TRIP: usize = 500;

pub struct Coalescing<'a, D: Db> {
    inner: &'a D,
    /// Inside [`Db::drive`]: batches wait in `queue` for the next flush.
    driving: std::cell::Cell<bool>,
    /// Inside [`Db::drive_atomic`], before its first flush: that flush is one batch.
    atomic: std::cell::Cell<bool>,
    /// The atomic flush failed: every batch of the drive fails without reaching the database.
    aborted: std::cell::Cell<bool>,
    queue: RefCell<Vec<Queued>>,
    /// Most statements sent in one round trip: a merged batch stays a modest D1 request.
    max_statements: usize,
    round_trips: std::cell::Cell<usize>,
}

impl<D: Db> Db for Coalescing<'_, D> {
    async fn batch(&self, stmts: Vec<Stmt>) -> Outcome {
        if !self.driving.get() {
            return self.send(stmts).await;
        }
        if self.aborted.get() {
            return Err(not_applied());
        }
        let slot = Rc::new(RefCell::new(None));
        self.queue.borrow_mut().push(Queued {
            stmts,
            slot: Rc::clone(&slot),
        });
        poll_fn(|_| match slot.borrow_mut().take() {
            Some(outcome) => Poll::Ready(outcome),
            None => Poll::Pending,
        })
        .await
    }

    /// Runs `tasks` to completion, concurrently, flushing their batches whenever all of them
    /// wait. Outputs in task order; `None` for a task that waited on something other than
    /// this database (no write path does), which is abandoned rather than spun on.
    async fn drive<F: Future>(&self, tasks: Vec<F>) -> Vec<Option<F::Output>> {
        self.driving.set(true);
        let out = self.run_together(tasks).await;
        self.driving.set(false);
        out
    }

    async fn drive_atomic<F: Future>(&self, tasks: Vec<F>) -> Option<Vec<Option<F::Output>>> {
        self.atomic.set(true);
        let out = self.drive(tasks).await;
        self.atomic.set(false);
        (!self.aborted.replace(false)).then_some(out)
    }
}

fn not_applied() -> DbError {
    DbError::Other("not applied: the merged batch it belonged to failed".into())
}

impl<'a, D: Db> Coalescing<'a, D> {
    async fn run_together<F: Future>(&self, tasks: Vec<F>) -> Vec<Option<F::Output>> {
        let mut tasks: Vec<Pin<Box<F>>> = tasks.into_iter().map(Box::pin).collect();
        let mut out: Vec<Option<F::Output>> = tasks.iter().map(|_| None).collect();
        loop {
            poll_fn(|cx| {
                for (task, done) in tasks.iter_mut().zip(out.iter_mut()) {
                    if done.is_none() {
                        if let Poll::Ready(v) = task.as_mut().poll(cx) {
                            *done = Some(v);
                        }
                    }
                }
                Poll::Ready(())
            })
            .await;
            if out.iter().all(Option::is_some) {
                return out;
            }
            let queued = std::mem::take(&mut *self.queue.borrow_mut());
            if queued.is_empty() {
                return out;
            }
            self.flush(queued).await;
        }
    }
}

impl<'a, D: Db> Coalescing<'a, D> {
    pub fn new(inner: &'a D, max_statements: usize) -> Self {
        Coalescing {
            inner,
            driving: std::cell::Cell::new(false),
            atomic: std::cell::Cell::new(false),
            aborted: std::cell::Cell::new(false),
            queue: RefCell::new(Vec::new()),
            max_statements: max_statements.max(1),
            round_trips: std::cell::Cell::new(0),
        }
    }

    /// Round trips made to the inner database so far.
    pub fn round_trips(&self) -> usize {
        self.round_trips.get()
    }

    /// Sends `queued` in as few round trips as the statement limit allows, bisecting a
    /// merged batch that fails.
    async fn flush(&self, queued: Vec<Queued>) {
        if self.atomic.replace(false) {
            let merged: Vec<Stmt> = queued.iter().flat_map(|q| q.stmts.clone()).collect();
            match self.send(merged).await {
                Ok(rows) => hand_out(queued, rows),
                Err(_) => {
                    self.aborted.set(true);
                    for q in queued {
                        *q.slot.borrow_mut() = Some(Err(not_applied()));
                    }
                }
            }
            return;
        }
        // A stack of groups, the first group on top.
        let mut work: Vec<Vec<Queued>> = self.chunks(queued);
        work.reverse();
        while let Some(group) = work.pop() {
            if group.len() <= 1 {
                for q in group {
                    let outcome = self.send(q.stmts).await;
                    *q.slot.borrow_mut() = Some(outcome);
                }
                continue;
            }
            let merged: Vec<Stmt> = group.iter().flat_map(|q| q.stmts.clone()).collect();
            match self.send(merged).await {
                Ok(rows) => hand_out(group, rows),
                Err(_) => {
                    let mut left = group;
                    let right = left.split_off(left.len() / 2);
                    work.push(right);
                    work.push(left);
                }
            }
        }
    }

    async fn send(&self, stmts: Vec<Stmt>) -> Outcome {
        self.round_trips.set(self.round_trips.get() + 1);
        self.inner.batch(stmts).await
    }

    /// `queued` cut into consecutive groups of at most `max_statements` statements (a batch
    /// larger than that alone forms its own group).
    fn chunks(&self, queued: Vec<Queued>) -> Vec<Vec<Queued>> {
        let mut groups: Vec<Vec<Queued>> = Vec::new();
        let mut current: Vec<Queued> = Vec::new();
        let mut size = 0;
        for q in queued {
            if !current.is_empty() && size + q.stmts.len() > self.max_statements {
                groups.push(std::mem::take(&mut current));
                size = 0;
            }
            size += q.stmts.len();
            current.push(q);
        }
        if !current.is_empty() {
            groups.push(current);
        }
        groups
    }
}

/// Splits a merged batch's results back into the member batches' results.
fn hand_out(group: Vec<Queued>, rows: Vec<Vec<Row>>) {
    let mut rows = rows.into_iter();
    for q in group {
        let mine: Vec<Vec<Row>> = rows.by_ref().take(q.stmts.len()).collect();
        let outcome = if mine.len() == q.stmts.len() {
            Ok(mine)
        } else {
            Err(DbError::Other(
                "a merged batch returned too few results".into(),
            ))
        };
        *q.slot.borrow_mut() = Some(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{block_on, SqliteDb};

    fn insert(id: &str) -> Vec<Stmt> {
        vec![Stmt::new(
            "INSERT INTO tenants (id, name) VALUES (?, ?) RETURNING id",
            vec![id.into(), id.into()],
        )]
    }

    #[test]
    fn concurrent_batches_share_one_round_trip_and_failures_are_isolated() {
        let db = SqliteDb::new();
        let co = Coalescing::new(&db, 500);
        let ids = ["t1", "t2", "t2", "t3", "t4"];
        let tasks: Vec<_> = ids.iter().map(|id| co.batch(insert(id))).collect();
        let out = block_on(co.drive(tasks));
        let ok: Vec<bool> = out.iter().map(|o| matches!(o, Some(Ok(_)))).collect();
        // The second "t2" fails alone; everything else applied as if run one by one.
        assert_eq!(ok, [true, true, false, true, true]);
        let rows = db.query("SELECT id FROM tenants WHERE id LIKE 't_' ORDER BY id");
        assert_eq!(rows.len(), 4);
        // One merged attempt, then bisection: far fewer than one round trip per batch
        // would be for large waves, and never more than 2·log2(n) + 1 for one failure.
        assert!(co.round_trips() <= 7, "{}", co.round_trips());
    }

    #[test]
    fn one_round_trip_when_nothing_fails_and_statement_limit_splits() {
        let db = SqliteDb::new();
        let co = Coalescing::new(&db, 500);
        let ids: Vec<String> = (0..100).map(|i| format!("x{i}")).collect();
        let out = block_on(co.drive(ids.iter().map(|i| co.batch(insert(i))).collect()));
        assert!(out.iter().all(|o| matches!(o, Some(Ok(r)) if r.len() == 1)));
        assert_eq!(co.round_trips(), 1);
        let small = Coalescing::new(&db, 30);
        let ids: Vec<String> = (0..100).map(|i| format!("y{i}")).collect();
        block_on(small.drive(ids.iter().map(|i| small.batch(insert(i))).collect()));
        assert_eq!(small.round_trips(), 4);
    }

    #[test]
    fn atomic_drive_applies_all_or_nothing() {
        let db = SqliteDb::new();
        let co = Coalescing::new(&db, 2);
        let ids = ["a1", "a2", "a3"];
        let out = block_on(co.drive_atomic(ids.iter().map(|i| co.batch(insert(i))).collect()));
        assert!(out.is_some_and(|o| o.iter().all(|r| matches!(r, Some(Ok(_))))));
        assert_eq!(
            co.round_trips(),
            1,
            "one batch, whatever the statement limit"
        );
        // A clash: nothing applies, and what the tasks do afterwards reaches no database.
        let before = db.round_trips.get();
        let ids = ["b1", "a1", "b2"];
        let tasks: Vec<_> = ids
            .iter()
            .map(|i| async {
                if co.batch(insert(i)).await.is_err() {
                    co.batch(insert("after")).await.is_ok()
                } else {
                    true
                }
            })
            .collect();
        assert!(block_on(co.drive_atomic(tasks)).is_none());
        assert_eq!(db.round_trips.get() - before, 1);
        let rows = db.query("SELECT id FROM tenants WHERE id IN ('b1', 'b2', 'after')");
        assert!(rows.is_empty());
        // Then ordinary drives work again.
        let out = block_on(co.drive(vec![co.batch(insert("b1"))]));
        assert!(matches!(out.first(), Some(Some(Ok(_)))));
    }
}
