//! What one Durable Object instance last wrote to its tenant row (`relay::adopt`). Its own
//! module, below both `ctx` (which carries it) and `relay` (which fills it), so the two do not
//! import each other.

use crate::store::schemas::Quota;
use crate::store::tombstones::Policy;
use std::cell::RefCell;

/// The settings `relay::adopt` writes to an object's tenant row, as the hop states them.
#[derive(Debug, Clone, PartialEq)]
pub struct Mirrored {
    pub tenant: String,
    pub strict: bool,
    pub reject_undeclared: bool,
    pub quota: Quota,
    pub deletion: Policy,
    pub declared: u128,
}

/// What one object instance last made its tenant row say (`relay::adopt`): a request whose hop
/// says the same skips the settings transaction (half of a GET's SQLite work). Kept per
/// instance, not per isolate: only the instance running writes its database, a new instance
/// starts empty (it may follow one in another isolate that wrote other settings), and an
/// admin call in the object, which may rewrite the row (a tenant move's import), clears it.
#[derive(Debug, Default)]
pub struct Adopted(RefCell<Option<Mirrored>>);

impl Adopted {
    pub fn holds(&self, settings: &Mirrored) -> bool {
        self.0.borrow().as_ref() == Some(settings)
    }

    /// Records what was just written.
    pub fn remember(&self, settings: Mirrored) {
        self.0.replace(Some(settings));
    }

    /// Forgets what was written: the next request runs `relay::adopt`'s transaction.
    pub fn clear(&self) {
        self.0.replace(None);
    }
}
