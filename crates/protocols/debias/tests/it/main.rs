//! The debias crate's integration tests, as one test binary.

mod methods;
