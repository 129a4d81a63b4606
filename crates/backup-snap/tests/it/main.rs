//! backup-snap's integration tests, in one test binary: one compile and one link per
//! target instead of one per file. Tests of every module run side by side on the test
//! threads; one that must not have neighbours holds `homelab_testkit::alone()`, and
//! those that would disturb it hold `homelab_testkit::shared()`.

mod common;

mod cli;
mod copy;
mod corruption;
mod crash;
mod databases;
mod defects;
mod drill;
mod full_disk;
mod hygiene;
mod lock_wait;
mod modes;
mod prune_policy;
mod retention;
mod roundtrip;
mod streaming;
mod text;
