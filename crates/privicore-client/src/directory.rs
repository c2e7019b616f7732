//! Directories over HTTP (docs/api/directory.md §3). Writes are async commands: each
//! returns the [`Accepted`] command id, whose outcome arrives as for every command.

use crate::api::Accepted;
use crate::error::ClientError;
use crate::http::Client;
use serde_json::{Value, json};

impl Client {
    /// §3.1: the directory id is the command id. `body` holds `name` and optionally
    /// `description` and `meta`.
    pub async fn register_directory(&self, body: Value) -> Result<Accepted, ClientError> {
        self.post_json("/directory/register", body)
            .await?
            .accepted()
    }

    /// §3.2; `query` is appended as is (`?filters[name]=Acme*`, or empty).
    pub async fn owned_directories(&self, query: &str) -> Result<Value, ClientError> {
        self.get(&format!("/directory/retrieve-owned-directories{query}"))
            .await?
            .expect(200)
    }

    /// §3.3; `query` is appended as is.
    pub async fn assigned_directories(&self, query: &str) -> Result<Value, ClientError> {
        self.get(&format!("/directory/retrieve-assigned-directories{query}"))
            .await?
            .expect(200)
    }

    /// §3.4.
    pub async fn retrieve_directory(&self, directory_id: &str) -> Result<Value, ClientError> {
        self.get(&format!("/directory/retrieve-directory/{directory_id}"))
            .await?
            .expect(200)
    }

    /// §3.5: the new profile's id is the command id.
    pub async fn create_directory_user(&self, body: Value) -> Result<Accepted, ClientError> {
        self.post_json("/directory/create-directory-user", body)
            .await?
            .accepted()
    }

    /// §3.6.
    pub async fn update_directory_user(&self, body: Value) -> Result<Accepted, ClientError> {
        self.post_json("/directory/update-user-information", body)
            .await?
            .accepted()
    }

    /// §3.7: the invitation id is the command id.
    pub async fn invite_to_directory(&self, body: Value) -> Result<Accepted, ClientError> {
        self.post_json("/directory/invite-profile", body)
            .await?
            .accepted()
    }

    /// §3.8.
    pub async fn set_directory_user_password(
        &self,
        directory_id: &str,
        profile_id: &str,
        password: &str,
        revoke_tokens: bool,
    ) -> Result<Accepted, ClientError> {
        self.post_json(
            "/directory/set-profile-password",
            json!({
                "directoryId": directory_id,
                "profileId": profile_id,
                "password": password,
                "revokeTokens": revoke_tokens,
            }),
        )
        .await?
        .accepted()
    }

    /// §3.9; `query` is appended as is (`?directoryId=…&filters[status]=all`, or empty for
    /// the invitations addressed to the caller).
    pub async fn directory_invites(&self, query: &str) -> Result<Value, ClientError> {
        self.get(&format!("/directory/list-directory-invites{query}"))
            .await?
            .expect(200)
    }

    /// §3.10: `decision` is `accept` or `decline`.
    pub async fn process_invitation(
        &self,
        invitation_id: &str,
        decision: &str,
    ) -> Result<Accepted, ClientError> {
        self.post_json(
            "/directory/process-invitation",
            json!({ "invitationId": invitation_id, "decision": decision }),
        )
        .await?
        .accepted()
    }

    /// §3.11.
    pub async fn directory_profile(
        &self,
        directory_id: &str,
        profile_id: &str,
    ) -> Result<Value, ClientError> {
        self.get(&format!(
            "/directory/retrieve-directory-profile/{directory_id}/{profile_id}"
        ))
        .await?
        .expect(200)
    }

    /// §3.12; `query` is appended as is.
    pub async fn directory_users(
        &self,
        directory_id: &str,
        query: &str,
    ) -> Result<Value, ClientError> {
        self.get(&format!(
            "/directory/list-directory-users/{directory_id}{query}"
        ))
        .await?
        .expect(200)
    }

    /// §3.13; `query` is appended as is.
    pub async fn directory_profiles_info(
        &self,
        directory_id: &str,
        query: &str,
    ) -> Result<Value, ClientError> {
        self.get(&format!(
            "/directory/directory-profiles-info/{directory_id}{query}"
        ))
        .await?
        .expect(200)
    }

    /// §3.18: `meta` merged in (`replace: false`) or replacing the stored object.
    pub async fn store_directory_meta(
        &self,
        directory_id: &str,
        meta: Value,
        replace: bool,
    ) -> Result<Accepted, ClientError> {
        self.post_json(
            "/directory/store-directory-meta-information",
            json!({ "directoryId": directory_id, "meta": meta, "replace": replace }),
        )
        .await?
        .accepted()
    }

    /// §3.14: a device of a managed user; `body` holds `directoryId`, `profileId`,
    /// `deviceName` and optionally `description`, `approve`, `publicKey`.
    pub async fn create_profile_device(&self, body: Value) -> Result<Accepted, ClientError> {
        self.post_json("/directory/create-profile-device", body)
            .await?
            .accepted()
    }

    /// §3.15.
    pub async fn add_storage_device_to_profile(
        &self,
        directory_id: &str,
        profile_id: &str,
        device: &str,
    ) -> Result<Accepted, ClientError> {
        self.post_json(
            "/directory/add-storage-device-to-profile",
            json!({ "directoryId": directory_id, "profileId": profile_id, "deviceIdentifier": device }),
        )
        .await?
        .accepted()
    }

    /// §3.16; `query` is appended as is.
    pub async fn directory_devices(
        &self,
        directory_id: &str,
        query: &str,
    ) -> Result<Value, ClientError> {
        self.get(&format!(
            "/directory/list-directory-devices/{directory_id}{query}"
        ))
        .await?
        .expect(200)
    }

    /// §3.17: the pool id is the command id. `body` holds `directoryId`, `title`,
    /// `question` and optionally `voterProfileIds`, `strategy`, `percentageRequired`,
    /// `quorumSize`, `timeLimit`, `numberOfAttempts`, `nonce`.
    pub async fn create_directory_voting_pool(&self, body: Value) -> Result<Accepted, ClientError> {
        self.post_json("/directory/create-directory-voting-pool", body)
            .await?
            .accepted()
    }
}
