use super::*;
use crate::routes::table::ROUTES;
use privicore_domain::Reason;

/// A route cannot exist without a description, nor a description without a route.
#[test]
fn every_route_is_described_once() {
    let mut missing = Vec::new();
    for route in ROUTES {
        let count = all_described()
            .filter(|d| d.verb == route.verb && d.path == route.path)
            .count();
        if count != 1 {
            missing.push(format!(
                "{:?} {} ({count} descriptions)",
                route.verb, route.path
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "add an entry to crates/privicore-http/src/openapi/described/ for: {missing:?}"
    );
    let orphans: Vec<String> = all_described()
        .filter(|d| !ROUTES.iter().any(|r| r.verb == d.verb && r.path == d.path))
        .map(|d| format!("{:?} {}", d.verb, d.path))
        .collect();
    assert!(
        orphans.is_empty(),
        "described but not in the route table: {orphans:?}"
    );
}

#[test]
fn the_document_has_every_route_of_the_table() {
    let doc = document();
    for route in ROUTES {
        let op = &doc["paths"][route.path][method(route.verb)];
        assert!(op.is_object(), "{:?} {} missing", route.verb, route.path);
        assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
    }
    assert!(doc["paths"]["/"]["post"].is_object() && doc["paths"]["/"]["get"].is_object());
}

#[test]
fn every_listed_key_is_in_the_catalogue() {
    for d in all_described() {
        for code in d.errors.iter().chain(d.async_errors) {
            assert!(
                Reason::from_code(code).is_some(),
                "{} lists unknown {code}",
                d.path
            );
        }
    }
    for code in streams::UPLOAD_ERRORS
        .iter()
        .chain(streams::DOWNLOAD_ERRORS)
    {
        assert!(Reason::from_code(code).is_some(), "{code}");
    }
}

/// Scopes in the document are the route table's.
#[test]
fn security_follows_the_guard() {
    let doc = document();
    for route in ROUTES {
        let security = &doc["paths"][route.path][method(route.verb)]["security"];
        match route.guard {
            Guard::Token(access) => {
                let oauth = security
                    .as_array()
                    .unwrap()
                    .iter()
                    .find_map(|s| s.get("oauthAccessToken"));
                assert_eq!(oauth.is_none(), access.profile_token_only, "{}", route.path);
                if let (Some(oauth), Some(scope)) = (oauth, access.scope) {
                    assert_eq!(oauth, &json!([scope]), "{}", route.path);
                }
            }
            Guard::Public => assert_eq!(security, &json!([]), "{}", route.path),
            _ => assert!(!security.as_array().unwrap().is_empty(), "{}", route.path),
        }
    }
}

/// Every `$ref` of the document points at something in it.
#[test]
fn every_reference_resolves() {
    fn walk(doc: &Value, v: &Value, bad: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    let target = r.strip_prefix('#').and_then(|p| doc.pointer(p));
                    if target.is_none() {
                        bad.push(r.clone());
                    }
                }
                m.values().for_each(|v| walk(doc, v, bad));
            }
            Value::Array(a) => a.iter().for_each(|v| walk(doc, v, bad)),
            _ => {}
        }
    }
    for doc in [document(), &asyncapi::build()] {
        let mut bad = Vec::new();
        walk(doc, doc, &mut bad);
        assert!(bad.is_empty(), "dangling: {bad:?}");
    }
}
