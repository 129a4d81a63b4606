//! The cross-tool tests, in one test binary: one compile and one link per target
//! instead of one per file. Tests of every module run side by side on the test
//! threads: the package test (it installs into /usr/bin) and the stack's end-to-end
//! test (timed alerts) hold `homelab_testkit::alone()`, and the tests they would
//! disturb, or be slowed by, hold `homelab_testkit::shared()`.

mod cli_contract;
mod glue;
mod package;
mod socket_proxy;
mod stack;
mod stack_backup;
mod stack_e2e;
mod stack_front_door;
mod stack_rules;
