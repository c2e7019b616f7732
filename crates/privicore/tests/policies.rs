//! Policy endpoints (docs/api/voting-and-policy.md §3, §5): the template catalogue,
//! registration and its validation, the active / inactive / deleted lifecycle, listing and
//! retrieval by id or name, and the lock-out safeguards of §1.6.

mod common;

use common::*;
use serde_json::{Value, json};

const UNKNOWN_ID: &str = "019c80d6-32cb-76f2-b6dc-e3faeb77ae43";

#[tokio::test]
async fn the_template_catalogue_has_ten_templates_and_twenty_nine_events() {
    let server = TestServer::start().await;
    let alice = provision(&server, "templates").await;
    let res = alice
        .api
        .get("/policy/list-policy-templates")
        .await
        .unwrap();
    assert_eq!(res.status, 200);
    // Keys in ascending numeric order.
    let text = String::from_utf8(res.body.clone()).unwrap();
    let positions: Vec<usize> = (1..=10)
        .map(|i| text.find(&format!("\"{i}\":{{\"name\"")).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    let catalogue = alice.api.list_policy_templates().await.unwrap();
    let templates = catalogue.as_object().unwrap();
    assert_eq!(templates.len(), 10);
    let events: usize = templates
        .values()
        .map(|t| t["events"].as_object().unwrap().len())
        .sum();
    assert_eq!(events, 29);
    assert_eq!(
        catalogue["1"],
        json!({
            "name": "Data exchange approval",
            "description": "Hold data exchanges and replacements until authenticators approve them.",
            "events": {
                "101": { "data_token.data_exchanged": "Exchange data for token" },
                "102": { "data_token.data_streamed": "Upload data via stream" },
                "103": { "data_token.data_replaced": "Replace stored data" }
            },
            "configuration": ["scope", "context", "classification", "label", "handling"],
            "votingAttributes": ["token", "context", "size", "classification", "fileName", "requester", "application"],
            "recommended": { "strategy": "consensus", "timeLimit": 300, "numberOfAttempts": 1 }
        })
    );
    assert_eq!(
        catalogue["2"]["recommended"],
        json!({ "strategy": "affirmative", "timeLimit": 120, "numberOfAttempts": 1 })
    );
    assert_eq!(
        catalogue["6"]["configuration"],
        json!(["scope", "clientId"])
    );
    assert_eq!(
        catalogue["7"]["recommended"],
        json!({ "strategy": "unanimous", "timeLimit": 600, "numberOfAttempts": 2 })
    );
    assert_eq!(
        catalogue["10"]["events"]["1006"],
        json!({ "directory.storage_device_added": "Add storage device to profile" })
    );
    assert_eq!(
        catalogue["10"]["configuration"],
        json!(["scope", "directoryId"])
    );
    let anonymous = server
        .client()
        .get("/policy/list-policy-templates")
        .await
        .unwrap();
    assert_eq!(
        (anonymous.status, anonymous.error_code().as_deref()),
        (401, Some("auth.missing_token"))
    );
}

#[tokio::test]
async fn a_policy_is_registered_activated_deactivated_and_deleted() {
    let server = TestServer::start().await;
    let alice = provision(&server, "policy").await;
    alice.authenticator("phone").await;
    let config = alice
        .api
        .register_voting_configuration(
            json!({ "name": "exchange-approvers", "strategy": "unanimous", "timeLimit": 300 }),
        )
        .await
        .unwrap();
    alice.ok(&config.command_id).await;

    // The configuration is named, as observed clients do.
    let registered = alice
        .api
        .register_policy(json!({
            "name": "exchange-approval", "policyTemplateId": "1", "applyingEventIds": ["102", "101"],
            "configuration": { "scope": "profile" }, "votingConfigurationId": "exchange-approvers"
        }))
        .await
        .unwrap();
    let id = registered.command_id.clone();
    assert_eq!(
        alice.ok(&id).await,
        json!({ "policyId": id, "name": "exchange-approval", "status": "inactive" })
    );
    let record = alice.api.retrieve_policy(&id).await.unwrap();
    assert_eq!(record["id"], id);
    assert_eq!(record["policyId"], id);
    assert_eq!(record["name"], "exchange-approval");
    assert_eq!(record["description"], Value::Null);
    assert_eq!(record["policyTemplateId"], "1");
    assert_eq!(record["templateName"], "Data exchange approval");
    assert_eq!(record["applyingEventIds"], json!(["101", "102"]));
    assert_eq!(record["configuration"], json!({ "scope": "profile" }));
    assert_eq!(record["votingConfigurationId"], config.command_id);
    assert_eq!(record["votingConfigurationName"], "exchange-approvers");
    assert_eq!(record["status"], "inactive");
    assert_eq!(record["activatedAt"], Value::Null);
    assert_eq!(record["deactivatedAt"], Value::Null);
    for key in ["exchange-approval", "Exchange-Approval", &id.to_uppercase()] {
        assert_eq!(
            alice.api.retrieve_policy(key).await.unwrap(),
            record,
            "{key}"
        );
    }
    assert_eq!(
        alice
            .api
            .retrieve_voting_configuration("exchange-approvers")
            .await
            .unwrap()["usedByPolicies"],
        1
    );
    let inactive = alice.api.list_inactive_policies("").await.unwrap();
    assert_eq!(ids(&inactive, "id"), vec![id.clone()]);
    assert_eq!(inactive["items"][0], record);
    assert_eq!(
        alice.api.list_active_policies("").await.unwrap()["meta"]["total"],
        0
    );

    // Activate, by name.
    let activated = alice
        .api
        .activate_policy("exchange-approval")
        .await
        .unwrap();
    let result = alice.ok(&activated.command_id).await;
    assert_eq!(
        (&result["policyId"], &result["status"]),
        (&json!(id), &json!("active"))
    );
    let again = alice.api.activate_policy(&id).await.unwrap();
    assert_eq!(
        alice.failure(&again.command_id).await,
        "policy.already_active"
    );
    let active = alice.api.list_active_policies("").await.unwrap();
    assert_eq!(ids(&active, "id"), vec![id.clone()]);
    assert_eq!(active["items"][0]["activatedAt"], result["activatedAt"]);
    assert_eq!(
        alice.api.list_inactive_policies("").await.unwrap()["meta"]["total"],
        0
    );
    let delete_active = alice.api.delete_policy(&id).await.unwrap();
    assert_eq!(
        alice.failure(&delete_active.command_id).await,
        "policy.must_be_inactive"
    );

    // Renaming the configuration shows in the record.
    let renamed = alice
        .api
        .update_voting_configuration(
            json!({ "votingConfigurationId": "exchange-approvers", "name": "approvers" }),
        )
        .await
        .unwrap();
    alice.ok(&renamed.command_id).await;
    assert_eq!(
        alice.api.retrieve_policy(&id).await.unwrap()["votingConfigurationName"],
        "approvers"
    );

    let deactivated = alice.api.deactivate_policy(&id).await.unwrap();
    let result = alice.ok(&deactivated.command_id).await;
    assert_eq!(
        (&result["policyId"], &result["status"]),
        (&json!(id), &json!("inactive"))
    );
    assert!(result["deactivatedAt"].is_string());
    let again = alice
        .api
        .deactivate_policy("EXCHANGE-APPROVAL")
        .await
        .unwrap();
    assert_eq!(
        alice.failure(&again.command_id).await,
        "policy.already_inactive"
    );
    let record = alice.api.retrieve_policy(&id).await.unwrap();
    assert_eq!(record["deactivatedAt"], result["deactivatedAt"]);
    assert!(record["activatedAt"].is_string(), "settings are kept");
    // It can be activated again.
    let reactivated = alice.api.activate_policy(&id).await.unwrap();
    alice.ok(&reactivated.command_id).await;
    let deactivated = alice.api.deactivate_policy(&id).await.unwrap();
    alice.ok(&deactivated.command_id).await;

    let deleted = alice.api.delete_policy("exchange-approval").await.unwrap();
    assert_eq!(
        alice.ok(&deleted.command_id).await,
        json!({ "policyId": id, "deleted": true })
    );
    for key in [id.as_str(), "exchange-approval"] {
        assert_eq!(
            api_code(alice.api.retrieve_policy(key).await),
            (404, "policy.not_found".into())
        );
        for call in [
            alice.api.activate_policy(key).await,
            alice.api.deactivate_policy(key).await,
            alice.api.delete_policy(key).await,
        ] {
            assert_eq!(api_code(call), (404, "policy.not_found".into()));
        }
    }
    assert_eq!(
        alice.api.list_registered_policies("").await.unwrap()["meta"]["total"],
        0
    );
    assert_eq!(
        alice
            .api
            .retrieve_voting_configuration("approvers")
            .await
            .unwrap()["usedByPolicies"],
        0
    );
    // The name is free again.
    let reused = alice
        .api
        .register_policy(json!({
            "name": "Exchange-Approval", "policyTemplateId": 1, "applyingEventIds": [101],
            "configuration": { "scope": "profile" }
        }))
        .await
        .unwrap();
    assert_eq!(
        alice.ok(&reused.command_id).await["name"],
        "Exchange-Approval"
    );
    let record = alice
        .api
        .retrieve_policy("exchange-approval")
        .await
        .unwrap();
    assert_eq!(record["id"], reused.command_id);
    assert_eq!(record["votingConfigurationId"], Value::Null);
    assert_eq!(record["votingConfigurationName"], Value::Null);
}

#[tokio::test]
async fn registration_validates_template_events_configuration_and_names() {
    let server = TestServer::start().await;
    let alice = provision(&server, "policy-rules").await;
    let base = json!({ "policyTemplateId": "1", "applyingEventIds": ["101"], "configuration": { "scope": "profile" } });
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = base.clone();
        b.as_object_mut().unwrap().remove(k);
        b
    };
    for (body, code, field) in [
        (
            without("policyTemplateId"),
            "validation.missing_field",
            "policyTemplateId",
        ),
        (
            without("applyingEventIds"),
            "validation.missing_field",
            "applyingEventIds",
        ),
        (
            with("applyingEventIds", json!([])),
            "validation.missing_field",
            "applyingEventIds",
        ),
        (
            without("configuration"),
            "validation.missing_field",
            "configuration",
        ),
        (
            with("policyTemplateId", json!("11")),
            "policy.template_not_found",
            "policyTemplateId",
        ),
        (
            with("policyTemplateId", json!(0)),
            "policy.template_not_found",
            "policyTemplateId",
        ),
        (
            with("policyTemplateId", json!("data")),
            "policy.template_not_found",
            "policyTemplateId",
        ),
        (
            with("applyingEventIds", json!(["201"])),
            "policy.invalid_event",
            "applyingEventIds",
        ),
        (
            with("applyingEventIds", json!(["101", "104"])),
            "policy.invalid_event",
            "applyingEventIds",
        ),
        (
            with("configuration", json!({})),
            "policy.invalid_configuration",
            "configuration",
        ),
        (
            with(
                "configuration",
                json!({ "clientId": "oauth-0123456789abcdef0123456789abcdef" }),
            ),
            "policy.invalid_configuration",
            "configuration",
        ),
        (
            with("configuration", json!({ "scope": "everyone" })),
            "policy.invalid_configuration",
            "configuration",
        ),
        (
            with("configuration", json!({ "context": "" })),
            "policy.invalid_configuration",
            "configuration",
        ),
        (
            with("configuration", json!({ "context": 7 })),
            "policy.invalid_configuration",
            "configuration",
        ),
        (
            with("configuration", json!({ "context": "x".repeat(513) })),
            "policy.invalid_configuration",
            "configuration",
        ),
        (
            with("configuration", json!("not json")),
            "policy.invalid_configuration",
            "configuration",
        ),
        (
            with("configuration", json!(["scope"])),
            "policy.invalid_configuration",
            "configuration",
        ),
        (
            with("name", json!(UNKNOWN_ID)),
            "policy.invalid_name",
            "name",
        ),
        (
            with("name", json!("x".repeat(101))),
            "policy.invalid_name",
            "name",
        ),
        (
            with("name", json!("tab\tname")),
            "policy.invalid_name",
            "name",
        ),
        (
            with("description", json!("d".repeat(501))),
            "validation.out_of_range",
            "description",
        ),
    ] {
        assert_eq!(
            api_error(alice.api.register_policy(body.clone()).await),
            (422, code.to_owned(), Some(field.to_owned())),
            "{body}"
        );
    }

    // Accepted shapes: numbers for ids, a configuration as a JSON string, the longest
    // values, and form encoding with bracket notation.
    let accepted = alice
        .api
        .register_policy(json!({
            "name": "retrieval", "description": "d".repeat(500), "policyTemplateId": 2,
            "applyingEventIds": "201", "configuration": "{\"context\":\"/finance/*\",\"classification\":\"Confidential\"}"
        }))
        .await
        .unwrap();
    alice.ok(&accepted.command_id).await;
    let record = alice.api.retrieve_policy("retrieval").await.unwrap();
    assert_eq!(record["applyingEventIds"], json!(["201"]));
    assert_eq!(
        record["configuration"],
        json!({ "context": "/finance/*", "classification": "Confidential" })
    );
    let form = alice
        .api
        .post_form(
            "/policy/register",
            &[
                ("name", "admin"),
                ("policyTemplateId", "10"),
                ("applyingEventIds[]", "1006"),
                ("applyingEventIds[]", "1001"),
                ("configuration[scope]", "profile"),
                (
                    "configuration[directoryId]",
                    "019C80D6-32CB-76F2-B6DC-E3FAEB77AE43",
                ),
            ],
        )
        .await
        .unwrap();
    assert_eq!(form.status, 202, "{}", form.json());
    alice.ok(form.json()["commandId"].as_str().unwrap()).await;
    let record = alice.api.retrieve_policy("admin").await.unwrap();
    assert_eq!(record["applyingEventIds"], json!(["1001", "1006"]));
    assert_eq!(record["configuration"]["directoryId"], UNKNOWN_ID);
    let oauth = alice
        .api
        .register_policy(json!({
            "name": "apps", "policyTemplateId": "6", "applyingEventIds": ["601", "602"],
            "configuration": { "clientId": "oauth-0123456789abcdef0123456789abcdef" }
        }))
        .await
        .unwrap();
    alice.ok(&oauth.command_id).await;

    // Asynchronous refusals: a taken name, an unknown configuration (by name or id).
    for (body, key) in [
        (with("name", json!("RETRIEVAL")), "policy.name_taken"),
        (
            with("votingConfigurationId", json!("nobody")),
            "voting_configuration.not_found",
        ),
        (
            with("configurationId", json!(UNKNOWN_ID)),
            "voting_configuration.not_found",
        ),
    ] {
        let accepted = alice.api.register_policy(body).await.unwrap();
        assert_eq!(alice.failure(&accepted.command_id).await, key);
    }
    // `configurationId` is the alias of `votingConfigurationId`, by id.
    let config = alice
        .api
        .register_voting_configuration(
            json!({ "name": "c", "strategy": "consensus", "timeLimit": 60 }),
        )
        .await
        .unwrap();
    alice.ok(&config.command_id).await;
    let aliased = alice
        .api
        .register_policy(with("configurationId", json!(config.command_id)))
        .await
        .unwrap();
    alice.ok(&aliased.command_id).await;
    assert_eq!(
        alice
            .api
            .retrieve_policy(&aliased.command_id)
            .await
            .unwrap()["votingConfigurationName"],
        "c"
    );

    // Without a name: the template name and the first 8 characters of the id (the
    // policy above had none either). Ids of the same minute share those 8, so a second
    // one's name grows to 13 rather than colliding.
    let first_name = alice
        .api
        .retrieve_policy(&aliased.command_id)
        .await
        .unwrap()["name"]
        .clone();
    assert_eq!(
        first_name,
        format!("Data exchange approval {}", &aliased.command_id[..8])
    );
    let second = alice.api.register_policy(base.clone()).await.unwrap();
    let name = alice.ok(&second.command_id).await["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let chars = if second.command_id[..8] == aliased.command_id[..8] {
        13
    } else {
        8
    };
    assert_eq!(
        name,
        format!("Data exchange approval {}", &second.command_id[..chars])
    );
}

#[tokio::test]
async fn policies_are_listed_with_filters_and_pages() {
    let server = TestServer::start().await;
    let alice = provision(&server, "policy-lists").await;
    alice.authenticator("phone").await;
    let mut made = Vec::new();
    for (name, template, events) in [
        ("exchange", "1", json!(["101", "102"])),
        ("retrieval", "2", json!(["201"])),
        ("deletion", "3", json!(["301"])),
    ] {
        let accepted = alice
            .api
            .register_policy(json!({
                "name": name, "policyTemplateId": template, "applyingEventIds": events,
                "configuration": { "scope": "profile" }
            }))
            .await
            .unwrap();
        alice.ok(&accepted.command_id).await;
        made.push(accepted.command_id);
    }
    let activated = alice.api.activate_policy("retrieval").await.unwrap();
    alice.ok(&activated.command_id).await;

    let names = |list: &Value| ids(list, "name");
    let all = alice.api.list_registered_policies("").await.unwrap();
    assert_eq!(
        names(&all),
        vec!["deletion", "retrieval", "exchange"],
        "newest first"
    );
    assert_eq!(all["meta"], json!({ "page": 1, "perPage": 25, "total": 3 }));
    for (query, expected) in [
        ("?filters[status]=active", vec!["retrieval"]),
        ("?filters[status]=inactive", vec!["deletion", "exchange"]),
        ("?filters[eventId]=102", vec!["exchange"]),
        ("?filters[eventId]=10", vec![]),
        ("?filters[policyTemplateId]=3", vec!["deletion"]),
        ("?perPage=2&page=2", vec!["exchange"]),
        ("?page=9", vec![]),
    ] {
        let list = alice.api.list_registered_policies(query).await.unwrap();
        assert_eq!(names(&list), expected, "{query}");
    }
    assert_eq!(
        names(
            &alice
                .api
                .list_inactive_policies("?filters[policyTemplateId]=1")
                .await
                .unwrap()
        ),
        vec!["exchange"]
    );
    assert_eq!(
        names(
            &alice
                .api
                .list_active_policies("?filters[eventId]=201")
                .await
                .unwrap()
        ),
        vec!["retrieval"]
    );
    assert_eq!(
        alice
            .api
            .list_registered_policies("?perPage=2")
            .await
            .unwrap()["meta"]["total"],
        3
    );
    for (result, code) in [
        (
            alice
                .api
                .list_registered_policies("?filters[status]=deleted")
                .await,
            "validation.invalid_format",
        ),
        (
            alice
                .api
                .list_active_policies("?filters[status]=active")
                .await,
            "validation.unknown_filter",
        ),
        (
            alice.api.list_inactive_policies("?filters[name]=x").await,
            "validation.unknown_filter",
        ),
        (
            alice.api.list_registered_policies("?perPage=101").await,
            "validation.out_of_range",
        ),
    ] {
        assert_eq!(api_code(result), (422, code.into()));
    }
}

#[tokio::test]
async fn another_profiles_policies_are_not_found() {
    let server = TestServer::start().await;
    let alice = provision(&server, "policy-owner").await;
    let bob = provision(&server, "policy-stranger").await;
    let registered = alice
        .api
        .register_policy(json!({
            "name": "private", "policyTemplateId": "4", "applyingEventIds": ["401"],
            "configuration": { "scope": "profile" }
        }))
        .await
        .unwrap();
    let id = registered.command_id.clone();
    alice.ok(&id).await;
    for key in [id.as_str(), "private"] {
        assert_eq!(
            api_code(bob.api.retrieve_policy(key).await),
            (404, "policy.not_found".into())
        );
        for call in [
            bob.api.activate_policy(key).await,
            bob.api.deactivate_policy(key).await,
            bob.api.delete_policy(key).await,
        ] {
            assert_eq!(api_code(call), (404, "policy.not_found".into()));
        }
    }
    for list in [
        bob.api.list_registered_policies("").await.unwrap(),
        bob.api.list_inactive_policies("").await.unwrap(),
    ] {
        assert_eq!(list["meta"]["total"], 0);
    }
    // Bob may use the same name; Alice's policy is untouched.
    let own = bob
        .api
        .register_policy(json!({
            "name": "private", "policyTemplateId": "4", "applyingEventIds": ["401"],
            "configuration": { "scope": "profile" }
        }))
        .await
        .unwrap();
    bob.ok(&own.command_id).await;
    assert_eq!(
        bob.api.retrieve_policy("private").await.unwrap()["id"],
        own.command_id
    );
    assert_eq!(
        alice.api.retrieve_policy("private").await.unwrap()["id"],
        id
    );
    // Bob's configuration cannot be named in Alice's policy, even by id.
    let bobs = bob
        .api
        .register_voting_configuration(
            json!({ "name": "bobs", "strategy": "consensus", "timeLimit": 60 }),
        )
        .await
        .unwrap();
    bob.ok(&bobs.command_id).await;
    let borrowed = alice
        .api
        .register_policy(json!({
            "policyTemplateId": "4", "applyingEventIds": ["401"],
            "configuration": { "scope": "profile" }, "votingConfigurationId": bobs.command_id
        }))
        .await
        .unwrap();
    assert_eq!(
        alice.failure(&borrowed.command_id).await,
        "voting_configuration.not_found"
    );
    // The routes need a token, and answer 405 to another method.
    let anonymous = server.client();
    for path in [
        "/policy/list-active-policies",
        "/policy/list-inactive-policies",
        "/policy/list-registered-policies",
        "/policy/retrieve-policy/private",
    ] {
        let res = anonymous.get(path).await.unwrap();
        assert_eq!(
            (res.status, res.error_code().as_deref()),
            (401, Some("auth.missing_token")),
            "{path}"
        );
    }
    for path in [
        "/policy/register",
        "/policy/activate",
        "/policy/deactivate",
        "/policy/delete",
    ] {
        let res = anonymous.post_json(path, json!({})).await.unwrap();
        assert_eq!(
            (res.status, res.error_code().as_deref()),
            (401, Some("auth.missing_token")),
            "{path}"
        );
        assert_eq!(anonymous.get(path).await.unwrap().status, 405, "{path}");
    }
    for path in ["/policy/activate", "/policy/deactivate", "/policy/delete"] {
        let res = alice.api.post_json(path, json!({})).await.unwrap();
        assert_eq!(
            (res.status, res.error_code().as_deref()),
            (422, Some("validation.missing_field")),
            "{path}"
        );
    }
}

#[tokio::test]
async fn safeguards_keep_active_policies_reachable() {
    let server = TestServer::start().await;
    let alice = provision(&server, "safeguards").await;

    // Activation needs voters, and enough of them for the quorum.
    let policy = |name: &str, config: Option<&str>| {
        let mut body = json!({
            "name": name, "policyTemplateId": "3", "applyingEventIds": ["301"],
            "configuration": { "scope": "profile" }
        });
        if let Some(c) = config {
            body["votingConfigurationId"] = json!(c);
        }
        body
    };
    let plain = alice
        .api
        .register_policy(policy("plain", None))
        .await
        .unwrap();
    alice.ok(&plain.command_id).await;
    let early = alice.api.activate_policy("plain").await.unwrap();
    assert_eq!(
        alice.failure(&early.command_id).await,
        "voting.no_eligible_authenticators"
    );
    let a = alice.authenticator("a").await;
    let b = alice.authenticator("b").await;
    let pair = alice
        .api
        .register_voting_configuration(json!({
            "name": "pair", "strategy": "unanimous", "timeLimit": 60, "deviceIdentifiers": [a, b], "quorumSize": 3
        }))
        .await
        .unwrap();
    alice.ok(&pair.command_id).await;
    let paired = alice
        .api
        .register_policy(policy("paired", Some("pair")))
        .await
        .unwrap();
    alice.ok(&paired.command_id).await;
    let short = alice.api.activate_policy("paired").await.unwrap();
    assert_eq!(
        alice.failure(&short.command_id).await,
        "voting.quorum_unreachable"
    );
    let fixed = alice
        .api
        .update_voting_configuration(json!({ "votingConfigurationId": "pair", "quorumSize": 2 }))
        .await
        .unwrap();
    alice.ok(&fixed.command_id).await;
    let activated = alice.api.activate_policy("paired").await.unwrap();
    alice.ok(&activated.command_id).await;

    // An active policy may not lose a voter it needs.
    let removal = alice.api.remove_authenticator(&a, false).await.unwrap();
    assert_eq!(
        alice.failure(&removal.command_id).await,
        "authenticator.required_by_active_policy"
    );
    let device_removal = alice.api.remove_device(&b, false).await.unwrap();
    assert_eq!(
        alice.failure(&device_removal.command_id).await,
        "authenticator.required_by_active_policy"
    );
    let raise = alice
        .api
        .update_voting_configuration(json!({ "votingConfigurationId": "pair", "quorumSize": 3 }))
        .await
        .unwrap();
    assert_eq!(
        alice.failure(&raise.command_id).await,
        "voting.quorum_unreachable"
    );
    let narrow = alice
        .api
        .update_voting_configuration(
            json!({ "votingConfigurationId": "pair", "deviceIdentifiers": [a] }),
        )
        .await
        .unwrap();
    assert_eq!(
        alice.failure(&narrow.command_id).await,
        "voting.quorum_unreachable"
    );
    // Other changes go through.
    let longer = alice
        .api
        .update_voting_configuration(json!({ "votingConfigurationId": "pair", "timeLimit": 120 }))
        .await
        .unwrap();
    alice.ok(&longer.command_id).await;

    // The defaults: the plain policy uses the default quorum (1 of every authenticator).
    let activated = alice.api.activate_policy("plain").await.unwrap();
    alice.ok(&activated.command_id).await;
    let too_big = alice.api.set_quorum_size(3).await.unwrap();
    assert_eq!(
        alice.failure(&too_big.command_id).await,
        "voting.quorum_unreachable"
    );
    let fits = alice.api.set_quorum_size(2).await.unwrap();
    alice.ok(&fits.command_id).await;
    assert_eq!(
        alice.api.retrieve_voting_strategy().await.unwrap()["quorumSize"],
        2
    );
    // A voter beyond every quorum may go: the plain policy keeps two voters for its quorum
    // of two, and the paired one does not list it.
    let c = alice.authenticator("c").await;
    let spare = alice.api.remove_authenticator(&c, false).await.unwrap();
    alice.ok(&spare.command_id).await;

    // `force` overrides; deactivated policies need nobody.
    let forced = alice.api.remove_authenticator(&a, true).await.unwrap();
    assert_eq!(alice.ok(&forced.command_id).await["roles"], json!([]));
    for name in ["paired", "plain"] {
        let off = alice.api.deactivate_policy(name).await.unwrap();
        alice.ok(&off.command_id).await;
    }
    let removed = alice.api.remove_device(&b, false).await.unwrap();
    assert_eq!(
        alice.ok(&removed.command_id).await["rolesDropped"],
        json!(["authenticator"])
    );
    // With nobody left, activation refuses again.
    let lonely = alice.api.activate_policy("paired").await.unwrap();
    assert_eq!(
        alice.failure(&lonely.command_id).await,
        "voting.no_eligible_authenticators"
    );
}

#[tokio::test]
async fn governance_survives_a_restart() {
    let mut server = TestServer::start().await;
    let alice = provision(&server, "policy-restart").await;
    let phone = alice.authenticator("phone").await;
    let config = alice
        .api
        .register_voting_configuration(json!({
            "name": "kept", "strategy": "minimum_percentage", "percentageRequired": 67,
            "timeLimit": 90, "deviceIdentifiers": [phone], "numberOfAttempts": 2
        }))
        .await
        .unwrap();
    alice.ok(&config.command_id).await;
    let registered = alice
        .api
        .register_policy(json!({
            "name": "kept-policy", "policyTemplateId": "1", "applyingEventIds": ["101"],
            "configuration": { "scope": "profile", "context": "/finance/*" }, "votingConfigurationId": "kept"
        }))
        .await
        .unwrap();
    alice.ok(&registered.command_id).await;
    let activated = alice.api.activate_policy("kept-policy").await.unwrap();
    alice.ok(&activated.command_id).await;
    let set = alice.api.set_voting_time_limit(45).await.unwrap();
    alice.ok(&set.command_id).await;
    let before = (
        alice.api.retrieve_policy("kept-policy").await.unwrap(),
        alice
            .api
            .retrieve_voting_configuration("kept")
            .await
            .unwrap(),
        alice.api.retrieve_voting_strategy().await.unwrap(),
        alice.api.list_authenticators("").await.unwrap()["items"][0]["registeredAt"].clone(),
    );

    server.restart().await;
    let api = server.client().with_token(&alice.token);
    let after = (
        api.retrieve_policy("kept-policy").await.unwrap(),
        api.retrieve_voting_configuration("kept").await.unwrap(),
        api.retrieve_voting_strategy().await.unwrap(),
        api.list_authenticators("").await.unwrap()["items"][0]["registeredAt"].clone(),
    );
    assert_eq!(before, after);
    assert_eq!(after.0["status"], "active");
    assert_eq!(after.2["timeLimit"], 45);
}
