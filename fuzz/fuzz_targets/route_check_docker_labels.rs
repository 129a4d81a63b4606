//! route-check: a container's labels (a JSON object, as the Docker API lists them)
//! turned into routes, with Traefik's defaults for what the labels leave out.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use route_check::docker::{ContainerInfo, Published, bypasses, routes};

fuzz_target!(|data: &[u8]| {
    let Ok(labels) = serde_json::from_slice::<BTreeMap<String, String>>(data) else {
        return;
    };
    let c = ContainerInfo {
        id: "0123456789ab".into(),
        name: "app-1".into(),
        image: "busybox".into(),
        labels,
        network_mode: Some("bridge".into()),
        published: vec![Published {
            address: "0.0.0.0".into(),
            port: Some(8080),
            container_port: Some(80),
            protocol: "tcp".into(),
        }],
        publish_all_ports: false,
    };
    for exposed_by_default in [true, false] {
        for route in routes(&c, exposed_by_default) {
            let _ = route.url();
        }
    }
    let _ = bypasses(&c, &[80, 443], &[]);
});
