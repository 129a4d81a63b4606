//! route-check: a page of Traefik's API (`/api/http/routers` or `/api/http/services`),
//! decoded and turned into routes as the API source does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use route_check::traefik_api::{ApiRouter, ApiService, parse_list, routes_from};

fuzz_target!(|data: &[u8]| {
    let body = String::from_utf8_lossy(data);
    let Ok(items) = parse_list(&body) else { return };
    let routers: Vec<ApiRouter> = items
        .iter()
        .filter_map(|v| serde_json::from_value(v.clone()).ok())
        .collect();
    let services: Vec<ApiService> = items
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect();
    for route in routes_from(&routers, &services) {
        let _ = route.url();
    }
});
