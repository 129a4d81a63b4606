//! log-tail-ship's integration tests, in one test binary: one compile and one link per
//! target instead of one per file. The fault test (a million lines, kills, an
//! unreliable receiver, timing that matters) holds `homelab_testkit::alone()`; every
//! other test holds `homelab_testkit::shared()`, so they run beside each other but
//! never beside it.

mod common;

mod docker;
mod docs;
mod edges;
mod env;
mod fault;
mod inotify;
mod journal;
mod logrotate;
mod loki;
mod looks;
mod rotation;
mod stdout;
