//! Environment twins: `LOG_TAIL_SHIP_*`, and the older `LOGSHIP_*` names still read.

use std::process::Stdio;

use crate::common::ship;

/// `--stdin --once` with an empty input and the sink from the environment only:
/// without a sink it is a usage error (64); with one, there is nothing to ship (0).
fn status_with(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let _guard = homelab_testkit::shared();
    let mut c = ship();
    c.args(["--stdin", "--once"])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_loki_url_comes_from_the_new_and_the_old_variable() {
    // A receiver that takes nothing: an empty input pushes nothing.
    let url = "http://127.0.0.1:9";
    let (code, err) = status_with(&[]);
    assert_eq!(code, Some(64), "no sink: {err}");
    assert!(err.contains("no sink"), "{err}");
    for var in ["LOG_TAIL_SHIP_LOKI_URL", "LOGSHIP_LOKI_URL"] {
        let (code, err) = status_with(&[(var, url)]);
        assert_eq!(code, Some(0), "{var}: {err}");
    }
}
