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
        let ok = if *path == "/metrics" {
            json!({"description": "Prometheus text", "content": {"text/plain": {"schema": {"type": "string"}}}})
        } else {
            json!({"description": "JSON", "content": {"application/json": {"schema": {"type": "object"}}}})
        };
        let mut op = json!({
            "summary": summary,
            "parameters": params,
            "responses": {
                "200": ok,
                "400": {"description": "A parameter or the body is not valid (the answer says which)"},
                "401": {"description": "Missing or wrong bearer token"},
                "404": {"description": "No such pipeline or run"},
                "409": {"description": "The action conflicts with the state (a run exists, no such task)"},
                "415": {"description": "The body is not application/json"},
                "421": {"description": "The request names a host this server does not answer to (see --allowed-host)"},
                "422": {"description": "The JSON body does not have the fields the operation takes"}
            }
        });
        if let Some(body) = request_body(path) {
            op["requestBody"] = body;
        }
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

/// The JSON body an action takes.
fn request_body(path: &str) -> Option<Value> {
    let (schema, required) = match path {
        "/api/pipelines/{name}/trigger" => (
            json!({"type": "object", "properties": {"date": {"type": "string", "description": "A date (YYYY-MM-DD) or, on a pipeline with several intervals a day, an interval's start (YYYY-MM-DDTHH:MM)"}}}),
            false,
        ),
        "/api/pipelines/{name}/backfill" => (
            json!({"type": "object", "required": ["from", "to"], "properties": {
                "from": {"type": "string", "format": "date"},
                "to": {"type": "string", "format": "date"},
                "reprocess": {"type": "string", "enum": ["failed", "all", "none"]},
                "dry_run": {"type": "boolean"}
            }}),
            true,
        ),
        "/api/runs/{id}/tasks/{task}/clear" => (
            json!({"type": "object", "properties": {"only": {"type": "boolean", "description": "Clear only this task, not its downstream tasks"}}}),
            false,
        ),
        _ => return None,
    };
    Some(json!({"required": required, "content": {"application/json": {"schema": schema}}}))
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
