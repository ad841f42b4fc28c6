//! Test doubles for the token-cache persistence trait
//! [`CachePersistence`](identity_cache_persistence::CachePersistence).
//!
//! | double | use it to test | model |
//! | --- | --- | --- |
//! | [`MockCachePersistence`] | how code calls a plugin: which calls, in which order, with what answers | `mockall` |
//! | [`InMemoryPersistence`] | code that stores through a plugin, without files or a keyring; storage faults and damaged data on demand ([`InMemoryStore`]) | a correct plugin |
//! | [`FaultyPersistence`] | how code copes with errors and slowness: fail the Nth save, slow every load | keyring-core's one-shot error mock |
//! | [`GatedPersistence`] | races: each call waits until the test lets it through, in the order the test picks | tower-test's `mock::pair` |
//!
//! The wrappers take any plugin, so they also wrap the reference plugin or your own.
//! [`InMemoryStore`] also has the hooks a conformance factory needs to provoke conditions
//! from outside a plugin: [`open`](InMemoryStore::open) refuses bad names,
//! [`inject_fault`](InMemoryStore::inject_fault) makes the storage refuse service, and
//! [`corrupt`](InMemoryStore::corrupt) damages what is stored.
//!
//! ```
//! use identity_cache_mocks::{FaultyPersistence, InMemoryStore, Operation};
//! use identity_cache_persistence::{CachePersistence, ErrorKind};
//!
//! let store = InMemoryStore::new();
//! let faulty = FaultyPersistence::new(store.slot("msal.cache"));
//! faulty.plan().fail_next(Operation::Save, ErrorKind::StorageFull);
//!
//! assert_eq!(faulty.save(b"{}").unwrap_err().kind(), ErrorKind::StorageFull);
//! assert_eq!(store.slot("msal.cache").load()?, None, "a failed save writes nothing");
//! faulty.save(b"{}")?;
//! assert_eq!(store.slot("msal.cache").load()?.as_deref(), Some(&b"{}"[..]));
//! # Ok::<(), identity_cache_persistence::Error>(())
//! ```

#![warn(missing_docs)]

mod faulty;
mod gated;
mod memory;
mod mock;
mod operation;
mod sync;

pub use faulty::{Fault, FaultPlan, FaultyPersistence};
pub use gated::{Completion, GateHandle, GatedPersistence, PendingCall};
pub use memory::{InMemoryPersistence, InMemoryStore};
pub use mock::{LockProbe, MockCachePersistence, probe_lock};
pub use operation::Operation;
