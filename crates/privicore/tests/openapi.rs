//! The OpenAPI document against itself and against the server: every documented example
//! satisfies its schema, every route answers what the document lists when called as the
//! document says, and `/docs` needs nothing from elsewhere.

mod common;

use common::*;
use privicore_client::{Body, Client, RawResponse};
use reqwest::Method;
use serde_json::{Value, json};

async fn document(api: &Client) -> Value {
    let res = api.get("/openapi.json").await.unwrap();
    assert_eq!(res.status, 200);
    let doc = res.json();
    assert_eq!(doc["openapi"], "3.1.0");
    doc
}

/// `schema` with the document's components beside it, so `#/components/…` resolves.
fn validator(doc: &Value, schema: &Value) -> jsonschema::Validator {
    let root = json!({ "components": doc["components"], "allOf": [schema] });
    jsonschema::draft202012::new(&root).unwrap_or_else(|e| panic!("{schema}: {e}"))
}

fn check(doc: &Value, schema: &Value, instance: &Value, what: &str, failures: &mut Vec<String>) {
    let v = validator(doc, schema);
    if let Err(e) = v.validate(instance) {
        failures.push(format!(
            "{what}: {e} (at {}) in {instance}",
            e.instance_path
        ));
    }
}

fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            out.push((path.clone(), method.clone(), op.clone()));
        }
    }
    out
}

#[tokio::test]
async fn documented_examples_satisfy_their_schemas() {
    let server = TestServer::start().await;
    let doc = document(&server.client()).await;
    let mut failures = Vec::new();
    let mut checked = 0;
    for (path, method, op) in operations(&doc) {
        let what = format!("{method} {path}");
        if let Some(media) = op["requestBody"]["content"]["application/json"].as_object()
            && let Some(example) = media.get("example")
        {
            check(&doc, &media["schema"], example, &what, &mut failures);
            checked += 1;
        }
        for (status, response) in op["responses"].as_object().unwrap() {
            let Some(media) = response["content"]["application/json"].as_object() else {
                continue;
            };
            let mut examples: Vec<&Value> = media.get("example").into_iter().collect();
            if let Some(named) = media.get("examples").and_then(Value::as_object) {
                examples.extend(named.values().map(|e| &e["value"]));
            }
            for example in examples {
                let what = format!("{what} {status}");
                check(&doc, &media["schema"], example, &what, &mut failures);
                checked += 1;
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every operation has at least its error examples.
    assert!(checked > 300, "only {checked} examples");
}

/// The answer must have a status the operation lists and a body its schema accepts.
fn hold_to(doc: &Value, op: &Value, what: &str, res: &RawResponse, failures: &mut Vec<String>) {
    let status = res.status.to_string();
    let Some(response) = op["responses"].get(&status) else {
        failures.push(format!(
            "{what}: status {status} is not documented ({})",
            String::from_utf8_lossy(&res.body)
        ));
        return;
    };
    if let Some(media) = response["content"]["application/json"].as_object() {
        let body: Value = match serde_json::from_slice(&res.body) {
            Ok(body) => body,
            Err(_) => {
                failures.push(format!("{what}: {status} is not JSON"));
                return;
            }
        };
        check(
            doc,
            &media["schema"],
            &body,
            &format!("{what} {status}"),
            failures,
        );
    }
}

fn concrete(path: &str) -> String {
    path.split('/')
        .map(|part| {
            if part.starts_with('{') {
                uuid::Uuid::new_v4().to_string()
            } else {
                part.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Every HTTP operation of the API listener is called once, as a provisioned profile would
/// call it: with the example where the document has one, else with an empty body. The
/// answers (successes and refusals alike) are held to the document.
#[tokio::test]
async fn every_operation_answers_as_documented() {
    let server = TestServer::start().await;
    let anonymous = server.client();
    let doc = document(&anonymous).await;
    let profile = provision(&server, "oapi").await;
    // Lists with items, so their item schemas are held to real rows.
    profile.attach_devices(&["oapi-store"]).await;
    profile.store("/finance/2026", &random_payload(64)).await;
    let mut failures = Vec::new();
    let mut replayed = 0;
    let mut succeeded = Vec::new();
    let mut command = None;
    // These end or replace the token the others use: last.
    let last = [
        "/profile/reauthorize-authorization-token",
        "/profile/revoke-authorization-token",
    ];
    let mut ops = operations(&doc);
    ops.sort_by_key(|(path, _, _)| last.contains(&path.as_str()));
    for (path, method, op) in ops {
        let what = format!("{method} {path}");
        let responses = op["responses"].as_object().unwrap();
        // Upgrades and the page are checked by their own tests; `/` is on other listeners.
        if responses.contains_key("101") || path == "/docs" || path == "/" {
            continue;
        }
        let tokened = op["security"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s.get("profileToken").is_some());
        let api = if tokened { &profile.api } else { &anonymous };
        let target = concrete(&path);
        let res = if method == "post" {
            let example = op["requestBody"]["content"]["application/json"]["example"].clone();
            let body = if example.is_null() {
                json!({})
            } else {
                example
            };
            api.send(Method::POST, &target, Body::Json(body)).await
        } else {
            api.get(&target).await
        }
        .unwrap();
        hold_to(&doc, &op, &what, &res, &mut failures);
        replayed += 1;
        if res.status < 300 {
            succeeded.push(what);
        }
        if res.status == 202
            && let Some(id) = res.json()["commandId"].as_str()
        {
            command = Some(id.to_owned());
        }
    }
    // Request command id status of a real command: the succeeded shape.
    let id = command.expect("some example was a command");
    let status_op = &doc["paths"]["/request-status/{command_id}"]["post"];
    let res = profile
        .api
        .post_json(&format!("/request-status/{id}"), json!({}))
        .await
        .unwrap();
    hold_to(&doc, status_op, "request-status", &res, &mut failures);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(replayed > 90, "only {replayed} operations replayed");
    // Not only refusals: the list endpoints, the examples and the documents succeed.
    assert!(
        succeeded.len() >= 30,
        "{} succeeded: {succeeded:?}",
        succeeded.len()
    );
}

/// The upload and download listeners answer a bad single-use value as documented.
#[tokio::test]
async fn the_stream_listeners_answer_as_documented() {
    let server = TestServer::start().await;
    let doc = document(&server.client()).await;
    let running = server.running();
    let mut failures = Vec::new();
    let upload = Client::new(&format!("http://{}", running.upstream_addr));
    let res = upload
        .send(
            Method::POST,
            "/?auth=U-unknown",
            Body::Raw {
                content_type: "application/octet-stream",
                bytes: b"payload".to_vec(),
            },
        )
        .await
        .unwrap();
    assert_eq!(res.status, 401);
    hold_to(
        &doc,
        &doc["paths"]["/"]["post"],
        "upload",
        &res,
        &mut failures,
    );
    let download = Client::new(&format!("http://{}", running.downstream_addr));
    let res = download.get("/?auth=D-unknown").await.unwrap();
    assert_eq!(res.status, 401);
    hold_to(
        &doc,
        &doc["paths"]["/"]["get"],
        "download",
        &res,
        &mut failures,
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `/docs` works offline: the page names no other host and loads only what this server
/// serves beside it.
#[tokio::test]
async fn the_docs_page_loads_nothing_from_elsewhere() {
    let server = TestServer::start().await;
    let api = server.client();
    let page = api.get("/docs").await.unwrap();
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let html = String::from_utf8(page.body).unwrap();
    // Schemes, protocol-relative URLs, and every way HTML or CSS loads a resource.
    for external in [
        "http:", "https:", "ftp:", "\"//", "'//", "<link", "src=", "@import", "url(",
    ] {
        let hit = html.lines().find(|l| l.contains(external));
        assert!(hit.is_none(), "{external} in {hit:?}");
    }
    // What the page fetches is here.
    assert!(html.contains("fetch(\"openapi.json\")"));
    assert!(html.contains("fetch(\"asyncapi.json\")"));
    let asyncapi = api.get("/asyncapi.json").await.unwrap();
    assert_eq!(asyncapi.status, 200);
    let asyncapi = asyncapi.json();
    assert_eq!(asyncapi["asyncapi"], "3.0.0");
    assert!(asyncapi["channels"]["client"]["messages"]["commandStatus"].is_object());
    assert!(asyncapi["channels"]["deviceBus"]["messages"]["ballot.issue"].is_object());
}

/// The frames a client socket really receives (replies, command outcomes, a data request
/// result, the token-ended notice) each satisfy the AsyncAPI message they are.
#[tokio::test]
async fn websocket_frames_match_the_asyncapi_document() {
    let server = TestServer::start().await;
    let asyncapi = server.client().get("/asyncapi.json").await.unwrap().json();
    let profile = provision(&server, "oapi-ws").await;
    profile.attach_devices(&["oapi-ws-store"]).await;
    let token = profile.store("/finance/2026", &random_payload(64)).await;
    assert_eq!(profile.fetch(&token).await.len(), 64);
    profile.session.ping().await.unwrap();
    let revoked = profile
        .api
        .post_json("/profile/revoke-authorization-token", json!({}))
        .await
        .unwrap();
    assert_eq!(revoked.status, 200);
    let notice = profile.session.notice(WAIT).await.unwrap();
    let messages = &asyncapi["channels"]["client"]["messages"];
    let mut failures = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut frames = profile.session.frames();
    frames.push(notice);
    for frame in frames {
        let name = match frame["data"]["type"].as_str() {
            Some("X-DPT-CAB-ID") => "commandStatus",
            Some("X-DPT-CAB-REQUEST-ID") => "dataRequestResult",
            Some("STREAM-READY") => "streamReady",
            Some(other) => panic!("undocumented event type {other}: {frame}"),
            None if frame["correlationId"].is_null() => "tokenEnded",
            None => "reply",
        };
        let schema = &messages[name]["payload"];
        assert!(schema.is_object(), "no message {name}");
        let v = jsonschema::draft202012::new(schema).unwrap();
        if let Err(e) = v.validate(&frame) {
            failures.push(format!("{name}: {e} in {frame}"));
        }
        seen.insert(name);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for name in ["commandStatus", "dataRequestResult", "reply", "tokenEnded"] {
        assert!(seen.contains(name), "no {name} frame seen: {seen:?}");
    }
}
