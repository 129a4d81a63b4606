//! homelab-docs' integration tests, in one test binary like every crate's (tests/it/,
//! one module per subject).

mod completions;
mod man;
