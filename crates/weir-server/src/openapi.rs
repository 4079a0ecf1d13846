//! The OpenAPI 3.1 description of the REST API, served at `/api/openapi.json`. Written by hand next to the router
//! (a test checks that every route is described), so clients can be generated and the UI stays honest.

use serde_json::{json, Value};

/// (method, path, summary, mutating) of every route.
pub const ROUTES: &[(&str, &str, &str, bool)] = &[
    ("get", "/api/health", "Liveness", false),
    ("get", "/api/openapi.json", "This document", false),
    ("get", "/api/pipelines", "Every pipeline with its schedule, paused state, next run and recent runs", false),
    ("get", "/api/pipelines/{name}", "One pipeline with its tasks", false),
    ("get", "/api/pipelines/{name}/runs", "Runs of a pipeline, newest first (limit, offset, state)", false),
    ("post", "/api/pipelines/{name}/trigger", "Start a manual run for a date (body: {date})", true),
    ("post", "/api/pipelines/{name}/backfill", "Backfill a date range (body: {from, to, reprocess, dry_run})", true),
    ("post", "/api/pipelines/{name}/pause", "Pause scheduling", true),
    ("post", "/api/pipelines/{name}/unpause", "Resume scheduling", true),
    ("get", "/api/pools", "Every pool with its slots and its running and queued task instances", false),
    (
        "get",
        "/api/streams",
        "The project's streams with status, events, decisions, alerts per rule, lag and latency",
        false,
    ),
    ("get", "/metrics", "Every stream's metrics in Prometheus' text format", false),
    ("get", "/api/runs", "Runs of every pipeline, newest first (pipeline, limit, offset, state)", false),
    ("get", "/api/runs/{id}", "A run and its task instances", false),
    ("get", "/api/runs/{id}/tasks/{task}/logs", "Every attempt of a task with its log", false),
    ("post", "/api/runs/{id}/tasks/{task}/clear", "Run a task (and its downstream tasks) again (body: {only})", true),
];

pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    for (method, path, summary, mutating) in ROUTES {
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": if name == "id" {"integer"} else {"string"}}}))
            .collect();
        let mut op = json!({
            "summary": summary,
            "parameters": params,
            "responses": {
                "200": {"description": "JSON", "content": {"application/json": {"schema": {"type": "object"}}}},
                "401": {"description": "Missing or wrong bearer token"},
                "404": {"description": "No such pipeline or run"},
                "409": {"description": "The action conflicts with the state (a run exists, no such task)"}
            }
        });
        if *mutating {
            op["security"] = json!([{"bearer": []}]);
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[*method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "weir", "version": env!("CARGO_PKG_VERSION"), "description": "Pipelines, runs, task instances, logs and the operator's actions."},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_of_the_router_is_described() {
        let source = include_str!("api.rs");
        let routed: Vec<&str> = source
            .lines()
            .filter_map(|l| l.trim().strip_prefix(".route(\""))
            .filter_map(|l| l.split('"').next())
            .collect();
        assert!(routed.len() >= 10);
        for path in &routed {
            assert!(super::ROUTES.iter().any(|(_, p, _, _)| p == path), "{path} is not in the OpenAPI document");
        }
        assert_eq!(routed.len(), super::ROUTES.len(), "a described route is not routed");
    }
}
