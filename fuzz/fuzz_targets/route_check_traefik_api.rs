//! route-check: a page of Traefik's API (`/api/http/routers` or `/api/http/services`),
//! decoded and turned into routes as the API source does, and the `X-Next-Page`
//! header that leads to the next one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use route_check::traefik_api::{ApiRouter, ApiService, next_page, parse_page, routes_from};

fuzz_target!(|data: &[u8]| {
    let body = String::from_utf8_lossy(data);
    let routers: Vec<ApiRouter> = parse_page(&body, "router").unwrap_or_default();
    let services: Vec<ApiService> = parse_page(&body, "service").unwrap_or_default();
    for route in routes_from(&routers, &services) {
        let _ = route.url();
    }
    if let Some(line) = body.lines().next() {
        let _ = next_page(1, Some(line));
    }
});
