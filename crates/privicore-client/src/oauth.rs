//! OAuth applications over HTTP (docs/api/oauth.md §3): what the developer profile, the
//! consenting profile and the application's server each call.

use crate::api::Accepted;
use crate::error::ClientError;
use crate::http::Client;
use serde_json::{Value, json};

fn encoded(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

impl Client {
    /// §3.1, with the profile token; the application id is the command id.
    pub async fn register_oauth_application(
        &self,
        name: &str,
        redirect_uri: &str,
        scopes: &[&str],
    ) -> Result<Accepted, ClientError> {
        self.post_json(
            "/profile/oauth-application-register",
            json!({ "name": name, "redirectUri": redirect_uri, "scopes": scopes }),
        )
        .await?
        .accepted()
    }

    /// §3.2: `clientId` and the one-time `clientSecret`.
    pub async fn retrieve_oauth_configuration(
        &self,
        application_id: &str,
    ) -> Result<Value, ClientError> {
        self.post_form(
            "/profile/retrieve-oauth-application-configuration",
            &[("applicationId", application_id)],
        )
        .await?
        .expect(200)
    }

    /// §3.3, by the consenting profile; the request id is the command id.
    pub async fn request_oauth_code(
        &self,
        client_id: &str,
        nonce: &str,
        scopes: &[&str],
    ) -> Result<Accepted, ClientError> {
        let mut path = format!(
            "/profile/oauth-application-request-authorization-code?client_id={}&nonce={}",
            encoded(client_id),
            encoded(nonce)
        );
        for scope in scopes {
            path.push_str(&format!("&scope[]={}", encoded(scope)));
        }
        self.get(&path).await?.accepted()
    }

    /// §3.6; `query` is appended as is (`?filters[name]=Invoice*`, or empty).
    pub async fn oauth_applications(&self, query: &str) -> Result<Value, ClientError> {
        self.get(&format!("/profile/retrieve-oauth-application-list{query}"))
            .await?
            .expect(200)
    }

    /// The same client, sending the application's client credentials (§3.4, §3.5).
    pub fn with_client_credentials(
        &self,
        client_id: &str,
        client_secret: &str,
    ) -> Result<Self, ClientError> {
        self.with_device_credentials(client_id, client_secret)
    }

    /// §3.4, with client credentials.
    pub async fn retrieve_authorization_code(
        &self,
        request_id: &str,
        nonce: &str,
    ) -> Result<Value, ClientError> {
        self.post_form(
            "/oauth-application/retrieve-authorization-code",
            &[("id", request_id), ("nonce", nonce)],
        )
        .await?
        .expect(200)
    }

    /// §3.5, with client credentials: `token`, `refreshToken` and their expiries.
    pub async fn obtain_access_token(&self, code: &str) -> Result<Value, ClientError> {
        self.post_form(
            "/oauth-application/obtain-access-token",
            &[("authorization_code", code)],
        )
        .await?
        .expect(200)
    }

    /// §3.8: `access_token` goes raw in `Authorization: Basic`.
    pub async fn refresh_access_token(
        &self,
        access_token: &str,
        refresh_token: &str,
    ) -> Result<Value, ClientError> {
        self.with_header("authorization", &format!("Basic {access_token}"))?
            .post_form(
                "/oauth-application/refresh-access-token",
                &[("refresh_token", refresh_token)],
            )
            .await?
            .expect(200)
    }

    /// §3.7.
    pub async fn oauth_application_scope(&self, access_token: &str) -> Result<Value, ClientError> {
        self.with_header("authorization", &format!("Basic {access_token}"))?
            .get("/oauth-application/retrieve-oauth-application-scope")
            .await?
            .expect(200)
    }
}
