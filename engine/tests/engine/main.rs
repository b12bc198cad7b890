//! Engine tests over the in-memory crash-simulating backend: a model test
//! against a `BTreeMap`, in-process crash tests, corruption tests and
//! snapshot isolation. One test binary, one module per concern.

mod common;
mod corruption;
mod crash;
mod model;
mod modes;
mod snapshot;
