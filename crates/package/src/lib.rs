//! Packaging only: this crate holds the `[package.metadata.deb]` of the
//! homelab-tools Debian package (see scripts/package). It has no code.
