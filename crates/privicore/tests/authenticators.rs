//! Verified authenticator endpoints (docs/api/voting-and-policy.md §4): the role on approved
//! devices, the profile's voting defaults and named voting configurations, with every
//! error key of §4.

mod common;

use common::*;
use privicore_client::Body;
use reqwest::Method;
use serde_json::{Value, json};

const UNKNOWN_DEVICE: &str = "8bc9e81b-76b0-464a-ae91-e8a1744e69f2";

#[tokio::test]
async fn the_authenticator_role_is_registered_listed_and_removed() {
    let server = TestServer::start().await;
    let alice = provision(&server, "auth").await;
    let bob = provision(&server, "auth-other").await;
    let phone = alice.approved_device("alice-phone").await;

    let registered = alice.api.register_authenticator(&phone).await.unwrap();
    let result = alice.ok(&registered.command_id).await;
    assert_eq!(result["deviceIdentifier"], phone);
    assert_eq!(result["roles"], json!(["authenticator"]));
    assert!(result["registeredAt"].as_str().unwrap().ends_with("+00:00"));
    let twice = alice.api.register_authenticator(&phone).await.unwrap();
    assert_eq!(
        alice.failure(&twice.command_id).await,
        "authenticator.already_registered"
    );

    // Only approved devices take the role.
    let requested = alice.api.request_device("pending").await.unwrap();
    let pending = alice.ok(&requested.command_id).await["deviceIdentifier"]
        .as_str()
        .unwrap()
        .to_owned();
    let early = alice.api.register_authenticator(&pending).await.unwrap();
    assert_eq!(
        alice.failure(&early.command_id).await,
        "device.not_approved"
    );
    let rejected = alice.api.reject_device(&pending).await.unwrap();
    alice.ok(&rejected.command_id).await;
    let late = alice.api.register_authenticator(&pending).await.unwrap();
    assert_eq!(alice.failure(&late.command_id).await, "device.not_approved");
    let gone = alice.approved_device("gone").await;
    let removed = alice.api.remove_device(&gone, false).await.unwrap();
    alice.ok(&removed.command_id).await;
    let after = alice.api.register_authenticator(&gone).await.unwrap();
    assert_eq!(alice.failure(&after.command_id).await, "device.inactive");

    // Synchronous refusals, for both register and remove.
    let bobs = bob.approved_device("bob-phone").await;
    for call in [0, 1] {
        let send = |device: &str| {
            let api = alice.api.clone();
            let device = device.to_owned();
            async move {
                if call == 0 {
                    api.register_authenticator(&device).await
                } else {
                    api.remove_authenticator(&device, false).await
                }
            }
        };
        assert_eq!(
            api_code(send(UNKNOWN_DEVICE).await),
            (404, "device.not_found".into())
        );
        assert_eq!(
            api_error(send("not-a-device").await),
            (
                422,
                "validation.invalid_format".into(),
                Some("deviceIdentifier".into())
            )
        );
        assert_eq!(
            api_error(send("").await),
            (
                422,
                "validation.missing_field".into(),
                Some("deviceIdentifier".into())
            )
        );
        assert_eq!(
            api_code(send(&bobs).await),
            (403, "device.not_owner".into())
        );
    }

    // A hosted storage device can hold both roles, and is online.
    let nas = alice.attach_devices(&["nas-1"]).await.remove(0);
    let both = alice.api.register_authenticator(&nas).await.unwrap();
    assert_eq!(
        alice.ok(&both.command_id).await["roles"],
        json!(["storage", "authenticator"])
    );

    let list = alice.api.list_authenticators("").await.unwrap();
    assert_eq!(
        list["meta"],
        json!({ "page": 1, "perPage": 25, "total": 2 })
    );
    assert_eq!(
        ids(&list, "deviceIdentifier"),
        vec![nas.clone(), phone.clone()]
    );
    let item = &list["items"][1];
    assert_eq!(item["name"], "alice-phone");
    assert_eq!(item["roles"], json!(["authenticator"]));
    assert_eq!(item["online"], false);
    assert_eq!(item["lastSeenAt"], Value::Null);
    assert!(item["registeredAt"].is_string());
    assert_eq!(item["publicKeyPinned"], false);
    assert_eq!(item["openBallots"], 0);
    assert_eq!(item["lastVoteAt"], Value::Null);
    let online = alice
        .api
        .list_authenticators("?filters[online]=true")
        .await
        .unwrap();
    assert_eq!(ids(&online, "deviceIdentifier"), vec![nas.clone()]);
    assert_eq!(online["items"][0]["publicKeyPinned"], true);
    let offline = alice
        .api
        .list_authenticators("?filters[online]=0")
        .await
        .unwrap();
    assert_eq!(ids(&offline, "deviceIdentifier"), vec![phone.clone()]);
    let second = alice
        .api
        .list_authenticators("?page=2&perPage=1")
        .await
        .unwrap();
    assert_eq!(ids(&second, "deviceIdentifier"), vec![phone.clone()]);
    assert_eq!(second["meta"]["total"], 2);
    for (query, code) in [
        ("?filters[online]=maybe", "validation.invalid_type"),
        ("?filters[name]=x", "validation.unknown_filter"),
        ("?perPage=101", "validation.out_of_range"),
        ("?page=0", "validation.out_of_range"),
    ] {
        assert_eq!(
            api_code(alice.api.list_authenticators(query).await),
            (422, code.into()),
            "{query}"
        );
    }
    let by_role = alice
        .api
        .list_devices("?filters[role]=authenticator")
        .await
        .unwrap();
    assert_eq!(by_role["meta"]["total"], 2);
    assert_eq!(
        bob.api.list_authenticators("").await.unwrap()["meta"]["total"],
        0
    );

    // Removing the role leaves the device approved with its other role.
    let removed = alice.api.remove_authenticator(&nas, false).await.unwrap();
    assert_eq!(
        alice.ok(&removed.command_id).await,
        json!({ "deviceIdentifier": nas, "roles": ["storage"] })
    );
    let again = alice.api.remove_authenticator(&nas, false).await.unwrap();
    assert_eq!(
        alice.failure(&again.command_id).await,
        "authenticator.not_registered"
    );
    let storage = alice.api.list_storage_devices("").await.unwrap();
    assert_eq!(ids(&storage, "deviceIdentifier"), vec![nas.clone()]);
    assert_eq!(storage["items"][0]["status"], "approved");
    assert_eq!(
        ids(
            &alice.api.list_authenticators("").await.unwrap(),
            "deviceIdentifier"
        ),
        vec![phone.clone()]
    );
    // It can be registered again later.
    let back = alice.api.register_authenticator(&nas).await.unwrap();
    alice.ok(&back.command_id).await;
    assert_eq!(
        alice.api.retrieve_voting_strategy().await.unwrap()["authenticatorCount"],
        2
    );
}

#[tokio::test]
async fn voting_defaults_are_set_one_setting_at_a_time() {
    let server = TestServer::start().await;
    let alice = provision(&server, "defaults").await;
    let bob = provision(&server, "defaults-other").await;
    let phone = alice.authenticator("phone").await;
    assert!(!phone.is_empty());

    let initial = json!({
        "strategy": "unanimous",
        "strategy_params": "100",
        "quorumSize": 1,
        "timeLimit": 300,
        "numberOfAttempts": 1,
        "authenticatorCount": 1,
        "supportedStrategies": ["unanimous", "consensus", "affirmative", "minimum_percentage"],
    });
    assert_eq!(alice.api.retrieve_voting_strategy().await.unwrap(), initial);
    let alias = alice
        .api
        .get("/verified-authenticator/retrieve-strategy")
        .await
        .unwrap();
    assert_eq!((alias.status, alias.json()), (200, initial));

    let set = alice.api.set_quorum_size(1).await.unwrap();
    assert_eq!(alice.ok(&set.command_id).await, json!({ "quorumSize": 1 }));
    let set = alice
        .api
        .set_quorum_strategy("minimum_percentage", Some(67))
        .await
        .unwrap();
    assert_eq!(
        alice.ok(&set.command_id).await,
        json!({ "strategy": "minimum_percentage", "strategy_params": "67" })
    );
    let set = alice.api.set_voting_time_limit(600).await.unwrap();
    assert_eq!(alice.ok(&set.command_id).await, json!({ "timeLimit": 600 }));
    let set = alice.api.set_maximum_voting_attempts(3).await.unwrap();
    assert_eq!(
        alice.ok(&set.command_id).await,
        json!({ "numberOfAttempts": 3 })
    );
    let now = alice.api.retrieve_voting_strategy().await.unwrap();
    assert_eq!(
        (
            &now["strategy"],
            &now["strategy_params"],
            &now["timeLimit"],
            &now["numberOfAttempts"]
        ),
        (
            &json!("minimum_percentage"),
            &json!("67"),
            &json!(600),
            &json!(3)
        )
    );
    assert_eq!(
        bob.api.retrieve_voting_strategy().await.unwrap()["strategy"],
        "unanimous",
        "defaults are per profile"
    );

    // Omitted parameters take the documented example values; a form body works too.
    for (strategy, expected) in [
        ("consensus", "51"),
        ("affirmative", "1"),
        ("unanimous", "100"),
    ] {
        let set = alice.api.set_quorum_strategy(strategy, None).await.unwrap();
        assert_eq!(alice.ok(&set.command_id).await["strategy_params"], expected);
    }
    let form = alice
        .api
        .post_form(
            "/verified-authenticator/set-quorum-strategy",
            &[("strategy", "unanimous"), ("strategy_params", "80")],
        )
        .await
        .unwrap();
    assert_eq!(form.status, 202);
    let command = form.json()["commandId"].as_str().unwrap().to_owned();
    assert_eq!(alice.ok(&command).await["strategy_params"], "80");

    let post = |path: &'static str, body: Value| {
        let api = alice.api.clone();
        async move {
            let res = api.post_json(path, body).await.unwrap();
            (
                res.status,
                res.json()["error"]["code"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                res.json()["error"]["field"].as_str().map(str::to_owned),
            )
        }
    };
    let quorum = "/verified-authenticator/set-quorum-size";
    let strategy = "/verified-authenticator/set-quorum-strategy";
    let time = "/verified-authenticator/set-voting-time-limit";
    let attempts = "/verified-authenticator/set-maximum-voting-attempts";
    for (path, body, code, field) in [
        (quorum, json!({}), "validation.missing_field", "quorumSize"),
        (
            quorum,
            json!({ "quorumSize": 0 }),
            "voting.invalid_quorum_size",
            "quorumSize",
        ),
        (
            quorum,
            json!({ "quorumSize": 101 }),
            "voting.invalid_quorum_size",
            "quorumSize",
        ),
        (
            quorum,
            json!({ "quorumSize": "two" }),
            "validation.invalid_type",
            "quorumSize",
        ),
        (
            quorum,
            json!({ "quorumSize": 1.5 }),
            "validation.invalid_type",
            "quorumSize",
        ),
        (strategy, json!({}), "validation.missing_field", "strategy"),
        (
            strategy,
            json!({ "strategy": "majority" }),
            "voting.invalid_strategy",
            "strategy",
        ),
        (
            strategy,
            json!({ "strategy": "minimum_percentage" }),
            "voting.invalid_percentage",
            "strategy_params",
        ),
        (
            strategy,
            json!({ "strategy": "minimum_percentage", "strategy_params": "101" }),
            "voting.invalid_percentage",
            "strategy_params",
        ),
        (
            strategy,
            json!({ "strategy": "consensus", "strategy_params": -1 }),
            "voting.invalid_percentage",
            "strategy_params",
        ),
        (
            strategy,
            json!({ "strategy": "consensus", "strategy_params": "half" }),
            "validation.invalid_type",
            "strategy_params",
        ),
        (time, json!({}), "validation.missing_field", "timeLimit"),
        (
            time,
            json!({ "timeLimit": 9 }),
            "voting.invalid_time_limit",
            "timeLimit",
        ),
        (
            time,
            json!({ "timeLimit": 86_401 }),
            "voting.invalid_time_limit",
            "timeLimit",
        ),
        (
            attempts,
            json!({}),
            "validation.missing_field",
            "numberOfAttempts",
        ),
        (
            attempts,
            json!({ "numberOfAttempts": 0 }),
            "voting.invalid_attempts",
            "numberOfAttempts",
        ),
        (
            attempts,
            json!({ "numberOfAttempts": 11 }),
            "voting.invalid_attempts",
            "numberOfAttempts",
        ),
    ] {
        assert_eq!(
            post(path, body.clone()).await,
            (422, code.to_owned(), Some(field.to_owned())),
            "{path} {body}"
        );
    }
    // The bounds themselves are accepted.
    for (path, body) in [
        (quorum, json!({ "quorumSize": 100 })),
        (time, json!({ "timeLimit": 10 })),
        (time, json!({ "timeLimit": 86_400 })),
        (attempts, json!({ "numberOfAttempts": 10 })),
        (
            strategy,
            json!({ "strategy": "minimum_percentage", "strategy_params": 0 }),
        ),
    ] {
        assert_eq!(post(path, body.clone()).await.0, 202, "{path} {body}");
    }
}

#[tokio::test]
async fn voting_configurations_are_registered_updated_and_read_by_id_or_name() {
    let server = TestServer::start().await;
    let alice = provision(&server, "config").await;
    let bob = provision(&server, "config-other").await;
    let phone = alice.authenticator("phone").await;
    let tablet = alice.authenticator("tablet").await;
    let plain = alice.approved_device("plain").await;
    let bobs = bob.authenticator("bob-phone").await;

    let registered = alice
        .api
        .register_voting_configuration(json!({
            "name": "Exchange approvers", "strategy": "unanimous", "timeLimit": 300, "deviceIdentifiers": []
        }))
        .await
        .unwrap();
    assert_eq!(
        alice.ok(&registered.command_id).await,
        json!({ "votingConfigurationId": registered.command_id, "name": "Exchange approvers" })
    );
    let id = registered.command_id.clone();
    let record = alice.api.retrieve_voting_configuration(&id).await.unwrap();
    assert_eq!(record["votingConfigurationId"], id);
    assert_eq!(record["strategy"], "unanimous");
    assert_eq!(record["percentageRequired"], Value::Null);
    assert_eq!(record["timeLimit"], 300);
    assert_eq!(record["quorumSize"], Value::Null);
    assert_eq!(record["numberOfAttempts"], Value::Null);
    assert_eq!(record["deviceIdentifiers"], json!([]));
    assert_eq!(record["eligibleAuthenticators"], 2);
    assert_eq!(record["usedByPolicies"], 0);
    assert_eq!(record["createdAt"], record["updatedAt"]);
    // By name, in any case, URL-encoded; by upper-case id.
    for key in [
        "Exchange approvers",
        "EXCHANGE APPROVERS",
        &id.to_uppercase(),
    ] {
        assert_eq!(
            alice.api.retrieve_voting_configuration(key).await.unwrap(),
            record,
            "{key}"
        );
    }
    // Another profile's configuration is not found, by id or by name.
    for key in [id.as_str(), "Exchange approvers", UNKNOWN_DEVICE, "nobody"] {
        assert_eq!(
            api_code(bob.api.retrieve_voting_configuration(key).await),
            (404, "voting_configuration.not_found".into()),
            "{key}"
        );
    }

    // Form encoding, with a list of voters and every optional field.
    let form = alice
        .api
        .post_form(
            "/verified-authenticator/voting-configuration/register",
            &[
                ("name", "pair"),
                ("strategy", "minimum_percentage"),
                ("percentageRequired", "67"),
                ("timeLimit", "120"),
                ("deviceIdentifiers[]", &phone),
                ("deviceIdentifiers[]", &tablet),
                ("quorumSize", "2"),
                ("numberOfAttempts", "3"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(form.status, 202);
    let pair = form.json()["commandId"].as_str().unwrap().to_owned();
    alice.ok(&pair).await;
    let record = alice
        .api
        .retrieve_voting_configuration("pair")
        .await
        .unwrap();
    assert_eq!(record["percentageRequired"], 67);
    assert_eq!(record["deviceIdentifiers"], json!([phone, tablet]));
    assert_eq!(
        (&record["quorumSize"], &record["numberOfAttempts"]),
        (&json!(2), &json!(3))
    );
    assert_eq!(record["eligibleAuthenticators"], 2);
    // A comma-separated list, and a percentage ignored for another strategy.
    let csv = alice
        .api
        .register_voting_configuration(json!({
            "name": "solo", "strategy": "affirmative", "timeLimit": 60,
            "percentageRequired": 500, "deviceIdentifiers": format!("{phone}, {phone}")
        }))
        .await
        .unwrap();
    alice.ok(&csv.command_id).await;
    let solo = alice
        .api
        .retrieve_voting_configuration("solo")
        .await
        .unwrap();
    assert_eq!(solo["deviceIdentifiers"], json!([phone]));
    assert_eq!(solo["percentageRequired"], Value::Null);

    // Asynchronous refusals.
    for (body, key) in [
        (
            json!({ "name": "exchange APPROVERS", "strategy": "consensus", "timeLimit": 60 }),
            "voting_configuration.name_taken",
        ),
        (
            json!({ "name": "with-plain", "strategy": "consensus", "timeLimit": 60, "deviceIdentifiers": [plain] }),
            "voting_configuration.unknown_authenticator",
        ),
        (
            json!({ "name": "with-bobs", "strategy": "consensus", "timeLimit": 60, "deviceIdentifiers": [bobs] }),
            "voting_configuration.unknown_authenticator",
        ),
        (
            json!({ "name": "with-unknown", "strategy": "consensus", "timeLimit": 60, "deviceIdentifiers": [UNKNOWN_DEVICE] }),
            "voting_configuration.unknown_authenticator",
        ),
    ] {
        let accepted = alice.api.register_voting_configuration(body).await.unwrap();
        assert_eq!(alice.failure(&accepted.command_id).await, key);
    }
    // The same name in another profile is free.
    let bobs_config = bob
        .api
        .register_voting_configuration(
            json!({ "name": "exchange approvers", "strategy": "consensus", "timeLimit": 60 }),
        )
        .await
        .unwrap();
    bob.ok(&bobs_config.command_id).await;

    // Synchronous refusals.
    let base = json!({ "name": "x", "strategy": "unanimous", "timeLimit": 300 });
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
    let many: Vec<String> = (0..101).map(|_| uuid_v4()).collect();
    for (body, code, field) in [
        (without("name"), "validation.missing_field", "name"),
        (without("strategy"), "validation.missing_field", "strategy"),
        (
            without("timeLimit"),
            "validation.missing_field",
            "timeLimit",
        ),
        (with("name", json!("")), "validation.missing_field", "name"),
        (
            with("name", json!(id)),
            "voting_configuration.invalid_name",
            "name",
        ),
        (
            with("name", json!("x".repeat(101))),
            "voting_configuration.invalid_name",
            "name",
        ),
        (
            with("name", json!("line\nbreak")),
            "voting_configuration.invalid_name",
            "name",
        ),
        (
            with("strategy", json!("majority")),
            "voting.invalid_strategy",
            "strategy",
        ),
        (
            with("timeLimit", json!(9)),
            "voting.invalid_time_limit",
            "timeLimit",
        ),
        (
            with("timeLimit", json!("soon")),
            "validation.invalid_type",
            "timeLimit",
        ),
        (
            with("strategy", json!("minimum_percentage")),
            "voting.invalid_percentage",
            "percentageRequired",
        ),
        (
            json!({ "name": "x", "strategy": "minimum_percentage", "timeLimit": 300, "percentageRequired": 101 }),
            "voting.invalid_percentage",
            "percentageRequired",
        ),
        (
            with("quorumSize", json!(0)),
            "voting.invalid_quorum_size",
            "quorumSize",
        ),
        (
            with("quorumSize", json!(101)),
            "voting.invalid_quorum_size",
            "quorumSize",
        ),
        (
            with("numberOfAttempts", json!(11)),
            "voting.invalid_attempts",
            "numberOfAttempts",
        ),
        (
            with("deviceIdentifiers", json!(["nope"])),
            "validation.invalid_format",
            "deviceIdentifiers",
        ),
        (
            with("deviceIdentifiers", json!(many)),
            "validation.out_of_range",
            "deviceIdentifiers",
        ),
        (
            with("deviceIdentifiers", json!([5])),
            "validation.invalid_type",
            "deviceIdentifiers",
        ),
    ] {
        assert_eq!(
            api_error(alice.api.register_voting_configuration(body.clone()).await),
            (422, code.to_owned(), Some(field.to_owned())),
            "{body}"
        );
    }

    // Update: by name or id, only the given fields change.
    let updated = alice
        .api
        .update_voting_configuration(json!({
            "votingConfigurationId": "exchange approvers", "quorumSize": 2, "numberOfAttempts": 2,
            "deviceIdentifiers": [phone]
        }))
        .await
        .unwrap();
    let record = alice.ok(&updated.command_id).await;
    assert_eq!(record["votingConfigurationId"], id);
    assert_eq!(
        (&record["quorumSize"], &record["numberOfAttempts"]),
        (&json!(2), &json!(2))
    );
    assert_eq!(record["deviceIdentifiers"], json!([phone]));
    assert_eq!(record["eligibleAuthenticators"], 1);
    assert_eq!(record["strategy"], "unanimous");
    assert_eq!(record["timeLimit"], 300);
    assert_eq!(
        alice.api.retrieve_voting_configuration(&id).await.unwrap(),
        record
    );
    // `null` resets to the profile default; an empty list means every authenticator; the
    // alias field `configurationId` works.
    let reset = alice
        .api
        .update_voting_configuration(json!({
            "configurationId": id, "quorumSize": null, "deviceIdentifiers": [], "name": "approvers",
            "strategy": "minimum_percentage", "percentageRequired": 51
        }))
        .await
        .unwrap();
    let record = alice.ok(&reset.command_id).await;
    assert_eq!(record["quorumSize"], Value::Null);
    assert_eq!(record["numberOfAttempts"], 2);
    assert_eq!(record["deviceIdentifiers"], json!([]));
    assert_eq!(record["name"], "approvers");
    assert_eq!(record["percentageRequired"], 51);
    assert_eq!(
        api_code(
            alice
                .api
                .retrieve_voting_configuration("exchange approvers")
                .await
        ),
        (404, "voting_configuration.not_found".into())
    );
    // Back to another strategy: the percentage goes.
    let back = alice
        .api
        .update_voting_configuration(
            json!({ "votingConfigurationId": "approvers", "strategy": "consensus" }),
        )
        .await
        .unwrap();
    assert_eq!(
        alice.ok(&back.command_id).await["percentageRequired"],
        Value::Null
    );
    // A form body: an empty value resets.
    let form = alice
        .api
        .post_form(
            "/verified-authenticator/voting-configuration/update",
            &[
                ("votingConfigurationId", "approvers"),
                ("numberOfAttempts", ""),
            ],
        )
        .await
        .unwrap();
    assert_eq!(form.status, 202);
    let command = form.json()["commandId"].as_str().unwrap().to_owned();
    assert_eq!(alice.ok(&command).await["numberOfAttempts"], Value::Null);

    for (body, key) in [
        (
            json!({ "votingConfigurationId": "approvers", "name": "PAIR" }),
            "voting_configuration.name_taken",
        ),
        (
            json!({ "votingConfigurationId": "approvers", "deviceIdentifiers": [plain] }),
            "voting_configuration.unknown_authenticator",
        ),
    ] {
        let accepted = alice.api.update_voting_configuration(body).await.unwrap();
        assert_eq!(alice.failure(&accepted.command_id).await, key);
    }
    for (body, status, code, field) in [
        (
            json!({ "name": "y" }),
            422,
            "validation.missing_field",
            Some("votingConfigurationId"),
        ),
        (
            json!({ "votingConfigurationId": "approvers" }),
            422,
            "validation.no_changes",
            None,
        ),
        (
            json!({ "votingConfigurationId": "approvers", "quorumSize": 0 }),
            422,
            "voting.invalid_quorum_size",
            Some("quorumSize"),
        ),
        (
            json!({ "votingConfigurationId": "approvers", "strategy": "minimum_percentage" }),
            422,
            "voting.invalid_percentage",
            Some("percentageRequired"),
        ),
        (
            json!({ "votingConfigurationId": "approvers", "name": UNKNOWN_DEVICE }),
            422,
            "voting_configuration.invalid_name",
            Some("name"),
        ),
        (
            json!({ "votingConfigurationId": "nobody", "timeLimit": 60 }),
            404,
            "voting_configuration.not_found",
            None,
        ),
        (
            json!({ "votingConfigurationId": bobs_config.command_id, "timeLimit": 60 }),
            404,
            "voting_configuration.not_found",
            None,
        ),
    ] {
        assert_eq!(
            api_error(alice.api.update_voting_configuration(body.clone()).await),
            (status, code.to_owned(), field.map(str::to_owned)),
            "{body}"
        );
    }

    // Listing: newest first, filters, pages.
    let list = alice.api.list_voting_configurations("").await.unwrap();
    assert_eq!(list["meta"]["total"], 3);
    assert_eq!(
        ids(&list, "name"),
        vec!["solo".to_owned(), "pair".into(), "approvers".into()]
    );
    for (query, names) in [
        ("?filters[name]=pa*", vec!["pair"]),
        ("?filters[name]=pair", vec!["pair"]),
        ("?filters[name]=pa", vec![]),
        ("?filters[strategy]=minimum_percentage", vec!["pair"]),
        ("?page=2&perPage=2", vec!["approvers"]),
    ] {
        let list = alice.api.list_voting_configurations(query).await.unwrap();
        assert_eq!(ids(&list, "name"), names, "{query}");
    }
    for (query, code) in [
        ("?filters[strategy]=majority", "voting.invalid_strategy"),
        ("?filters[owner]=x", "validation.unknown_filter"),
        ("?perPage=0", "validation.out_of_range"),
    ] {
        assert_eq!(
            api_code(alice.api.list_voting_configurations(query).await),
            (422, code.into()),
            "{query}"
        );
    }
    assert_eq!(
        bob.api.list_voting_configurations("").await.unwrap()["meta"]["total"],
        1
    );
}

#[tokio::test]
async fn the_endpoints_need_a_token_and_their_method() {
    let server = TestServer::start().await;
    let anonymous = server.client();
    for path in [
        "/verified-authenticator/list-verified-authenticators",
        "/verified-authenticator/retrieve-voting-strategy",
        "/verified-authenticator/voting-configuration/list",
        "/verified-authenticator/voting-configuration/retrieve/x",
    ] {
        let res = anonymous.get(path).await.unwrap();
        assert_eq!(
            (res.status, res.error_code().as_deref()),
            (401, Some("auth.missing_token")),
            "{path}"
        );
    }
    for path in [
        "/verified-authenticator/register",
        "/verified-authenticator/remove",
        "/verified-authenticator/set-quorum-size",
        "/verified-authenticator/set-quorum-strategy",
        "/verified-authenticator/set-voting-time-limit",
        "/verified-authenticator/set-maximum-voting-attempts",
        "/verified-authenticator/voting-configuration/register",
        "/verified-authenticator/voting-configuration/update",
    ] {
        let res = anonymous.post_json(path, json!({})).await.unwrap();
        assert_eq!(
            (res.status, res.error_code().as_deref()),
            (401, Some("auth.missing_token")),
            "{path}"
        );
        let res = anonymous
            .send(Method::GET, path, Body::Empty)
            .await
            .unwrap();
        assert_eq!(res.status, 405, "{path}");
    }
    // A body that does not parse is a 400, never a 500.
    let alice = provision(&server, "auth-bodies").await;
    let res = alice
        .api
        .send(
            Method::POST,
            "/verified-authenticator/voting-configuration/register",
            Body::Raw {
                content_type: "application/json",
                bytes: b"{\"name\":".to_vec(),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (res.status, res.error_code().as_deref()),
        (400, Some("request.malformed"))
    );
    let res = alice
        .api
        .post_json(
            "/verified-authenticator/set-quorum-size",
            json!({ "quorumSize": [1] }),
        )
        .await
        .unwrap();
    assert_eq!(
        (res.status, res.error_code().as_deref()),
        (422, Some("validation.invalid_type"))
    );
}

fn uuid_v4() -> String {
    uuid::Uuid::new_v4().to_string()
}
