//! OAuth helpers: a registered application and the token answer of a grant
//! (docs/api/oauth.md §2), for the tests that act as an application.

use super::{Provisioned, TestServer};
use privicore_client::Client;
use serde_json::{Value, json};

pub fn nonce() -> String {
    format!("n-{}", uuid::Uuid::new_v4().simple())
}

/// A registered application whose configuration was read.
pub struct App {
    pub id: String,
    pub client_id: String,
    pub secret: String,
    pub server: Client,
}

pub async fn register(server: &TestServer, dev: &Provisioned, name: &str, scopes: &[&str]) -> App {
    let accepted = dev
        .api
        .register_oauth_application(name, "https://app.example.com/cb", scopes)
        .await
        .unwrap();
    let result = dev.ok(&accepted.command_id).await;
    assert_eq!(
        result,
        json!({ "applicationId": accepted.command_id, "name": name })
    );
    let config = dev
        .api
        .retrieve_oauth_configuration(&accepted.command_id)
        .await
        .unwrap();
    let client_id = config["clientId"].as_str().unwrap().to_owned();
    let secret = config["clientSecret"].as_str().unwrap().to_owned();
    App {
        id: accepted.command_id,
        server: server
            .client()
            .with_client_credentials(&client_id, &secret)
            .unwrap(),
        client_id,
        secret,
    }
}

/// Request (by `owner`), retrieve and exchange a code: the token answer.
pub async fn grant(owner: &Provisioned, app: &App, scopes: &[&str]) -> Value {
    let n = nonce();
    let request = owner
        .api
        .request_oauth_code(&app.client_id, &n, scopes)
        .await
        .unwrap();
    owner.ok(&request.command_id).await;
    let code = app
        .server
        .retrieve_authorization_code(&request.command_id, &n)
        .await
        .unwrap();
    app.server
        .obtain_access_token(code["authorizationCode"].as_str().unwrap())
        .await
        .unwrap()
}

pub fn token_of(answer: &Value) -> String {
    answer["token"].as_str().unwrap().to_owned()
}
