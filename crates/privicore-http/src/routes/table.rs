//! The one table of the API's routes: each route's method, path, handler and what it asks
//! of the caller (docs/api/oauth.md §1.1 scopes, §1.3 profile-token-only endpoints,
//! docs/api/README.md §3.3 public-key rule). The router is built from this table, and the
//! handlers' [`super::caller`] reads the access of the route it serves from it, so no
//! route exists without an entry and no handler states its own access.

use super::{
    AppState, devices, directory, keys, oauth, policy, pools, profile, storage, tokens, utility,
};
use super::{voting, ws};
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, on};
use privicore_domain::auth::Access;

/// What a route asks of the caller.
#[derive(Debug, Clone, Copy)]
pub enum Guard {
    /// No credentials.
    Public,
    /// `X-DPT-AUTHORIZATION` with a token meeting `Access`.
    Token(Access),
    /// Like `Token`, but the header may be absent (Request command id status).
    OptionalToken(Access),
    /// `Authorization: Basic` with a device's bundle credentials.
    Device,
    /// `Authorization: Basic base64(clientId:clientSecret)` of an OAuth application.
    Client,
    /// `Authorization: Basic <raw OAuth access token>`.
    AccessToken,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    Get,
    Post,
}

impl Verb {
    fn filter(self) -> MethodFilter {
        match self {
            Self::Get => MethodFilter::GET,
            Self::Post => MethodFilter::POST,
        }
    }

    /// Whether a request with `method` is served by this verb (`HEAD` goes to `GET`).
    pub fn serves(self, method: &Method) -> bool {
        match self {
            Self::Get => method == Method::GET || method == Method::HEAD,
            Self::Post => method == Method::POST,
        }
    }

    pub fn method(self) -> Method {
        match self {
            Self::Get => Method::GET,
            Self::Post => Method::POST,
        }
    }
}

pub struct Route {
    pub verb: Verb,
    pub path: &'static str,
    pub guard: Guard,
    handler: fn(MethodFilter) -> MethodRouter<AppState>,
}

impl Route {
    /// The handler, run with this route's guard at hand for [`current`].
    pub fn method_router(&self) -> MethodRouter<AppState> {
        (self.handler)(self.verb.filter())
            .layer(axum::middleware::from_fn_with_state(self.guard, with_guard))
    }
}

const fn scope(name: &'static str) -> Guard {
    Guard::Token(Access::scope(name))
}

const PROFILE_ONLY: Guard = Guard::Token(Access::profile_only());
const ANY_TOKEN: Guard = Guard::Token(Access::any().key_exempt());
const DEVICE: Guard = scope("device:manage");
const STORAGE: Guard = scope("storage:manage");
const READ: Guard = scope("data-token:read");
const WRITE: Guard = scope("data-token:write");
const AUTHENTICATOR: Guard = scope("authenticator:manage");
const POLICY: Guard = scope("policy:manage");
const VOTING: Guard = scope("voting:vote");
const DIRECTORY: Guard = scope("directory:manage");

macro_rules! routes {
    ($($verb:ident $path:literal => $handler:path, $guard:expr;)*) => {
        /// Every REST route of the API listener, plus the WebSocket upgrade at `/ws`.
        pub static ROUTES: &[Route] = &[$(Route {
            verb: Verb::$verb,
            path: $path,
            guard: $guard,
            handler: |filter| on(filter, $handler),
        }),*];
    };
}

routes! {
    Get "/health" => utility::health, Guard::Public;
    Get "/request-status/{command_id}" => utility::request_status, Guard::OptionalToken(Access::any().key_exempt());
    Post "/request-status/{command_id}" => utility::request_status, Guard::OptionalToken(Access::any().key_exempt());
    Post "/profile/register-profile" => profile::register, Guard::Public;
    Post "/profile/authenticate" => profile::authenticate, Guard::Public;
    Get "/profile/retrieve-profile-id" => profile::retrieve_profile_id, Guard::Token(Access::scope("profile:read").key_exempt());
    Post "/profile/change-password" => profile::change_password, PROFILE_ONLY;
    Post "/profile/generate-token-qr" => profile::generate_qr_token, PROFILE_ONLY;
    Post "/profile/reauthorize-authorization-token" => profile::reauthorize, Guard::Token(Access::profile_only().key_exempt());
    Post "/profile/revoke-authorization-token" => profile::revoke, ANY_TOKEN;
    Post "/profile/authorization-token/expiry" => profile::token_expiry, ANY_TOKEN;
    Get "/generate-keys" => keys::generate, Guard::Public;
    Post "/public-key/register-public-key" => keys::register, Guard::Token(Access::profile_only().key_exempt());
    Get "/public-key/retrieve-public-key" => keys::retrieve, scope("profile:read");
    Get "/dptcab/public-key" => keys::cab, Guard::Public;
    Post "/device/request-unique-identifier" => devices::request_identifier, DEVICE;
    Post "/device/retrieve-unique-identifier" => devices::retrieve_identifier, DEVICE;
    Get "/device/retrieve-profile-devices" => devices::list, DEVICE;
    Post "/device/configure-meta" => devices::configure_meta, DEVICE;
    Post "/device/approve-device" => devices::approve, DEVICE;
    Post "/device/reject-device" => devices::reject, DEVICE;
    Post "/device/download-device-configuration" => devices::download_configuration, DEVICE;
    Get "/device/retrieve-device-configuration/{device}" => devices::retrieve_configuration, DEVICE;
    Post "/device/remove" => devices::remove, DEVICE;
    Post "/storage/register" => storage::register, STORAGE;
    Get "/storage/list-storage-devices" => storage::list, STORAGE;
    Post "/storage/sync-device" => storage::sync, STORAGE;
    Post "/storage/remove" => storage::remove, STORAGE;
    Post "/data-token/reserve-token-space" => tokens::reserve, WRITE;
    Get "/data-token/retrieve-temporary-data-token/{reservation}" => tokens::temporary, WRITE;
    Post "/data-token/exchange-data-for-token" => tokens::exchange, WRITE;
    Post "/data-token/request-data" => tokens::request_data, READ;
    Post "/data-token/configure-information-security-risk-meta" => tokens::configure_risk, WRITE;
    Post "/data-token/configure-file-meta" => tokens::configure_file_meta, WRITE;
    Get "/data-token/list-data-tokens" => tokens::list, READ;
    Post "/data-token/update-data-token" => tokens::update, WRITE;
    Post "/data-token/update-data" => tokens::update, WRITE;
    Post "/data-token/delete-data" => tokens::delete, WRITE;
    Get "/data-token/transaction-count-statistics" => tokens::statistics, READ;
    Get "/data-token/statistics" => tokens::statistics, READ;
    Post "/verified-authenticator/register" => voting::register, AUTHENTICATOR;
    Get "/verified-authenticator/list-verified-authenticators" => voting::list, AUTHENTICATOR;
    Get "/verified-authenticator/retrieve-voting-strategy" => voting::strategy, AUTHENTICATOR;
    Get "/verified-authenticator/retrieve-strategy" => voting::strategy, AUTHENTICATOR;
    Post "/verified-authenticator/set-quorum-size" => voting::set_quorum_size, AUTHENTICATOR;
    Post "/verified-authenticator/set-quorum-strategy" => voting::set_quorum_strategy, AUTHENTICATOR;
    Post "/verified-authenticator/set-voting-time-limit" => voting::set_time_limit, AUTHENTICATOR;
    Post "/verified-authenticator/set-maximum-voting-attempts" => voting::set_attempts, AUTHENTICATOR;
    Post "/verified-authenticator/remove" => voting::remove, AUTHENTICATOR;
    Post "/verified-authenticator/voting-configuration/register" => voting::register_configuration, AUTHENTICATOR;
    Post "/verified-authenticator/voting-configuration/update" => voting::update_configuration, AUTHENTICATOR;
    Get "/verified-authenticator/voting-configuration/list" => voting::list_configurations, AUTHENTICATOR;
    Get "/verified-authenticator/voting-configuration/retrieve/{configuration}" => voting::retrieve_configuration, AUTHENTICATOR;
    Get "/policy/list-policy-templates" => policy::templates, POLICY;
    Post "/policy/register" => policy::register, POLICY;
    Get "/policy/list-active-policies" => policy::list_active, POLICY;
    Get "/policy/list-inactive-policies" => policy::list_inactive, POLICY;
    Post "/policy/activate" => policy::activate, POLICY;
    Post "/policy/deactivate" => policy::deactivate, POLICY;
    Post "/policy/delete" => policy::delete, POLICY;
    Get "/policy/list-registered-policies" => policy::list_registered, POLICY;
    Get "/policy/retrieve-policy/{policy}" => policy::retrieve, POLICY;
    Post "/voting/create" => pools::create, VOTING;
    Get "/voting/check-pool-status/{pool}" => pools::pool_status, VOTING;
    Get "/voting/pending-ballots" => pools::pending_ballots, Guard::Device;
    Post "/voting/cast-vote" => pools::cast_vote, Guard::Device;
    Post "/profile/oauth-application-register" => oauth::register, PROFILE_ONLY;
    Post "/profile/retrieve-oauth-application-configuration" => oauth::configuration, PROFILE_ONLY;
    Get "/profile/oauth-application-request-authorization-code" => oauth::request_code, PROFILE_ONLY;
    Get "/profile/retrieve-oauth-application-list" => oauth::list, PROFILE_ONLY;
    Post "/oauth-application/retrieve-authorization-code" => oauth::retrieve_code, Guard::Client;
    Post "/oauth-application/obtain-access-token" => oauth::obtain_token, Guard::Client;
    Post "/oauth-application/refresh-access-token" => oauth::refresh_token, Guard::AccessToken;
    Get "/oauth-application/retrieve-oauth-application-scope" => oauth::scope, Guard::AccessToken;
    Post "/oauth-application/retrieve-oauth-application-scope" => oauth::scope, Guard::AccessToken;
    Post "/directory/register" => directory::register, DIRECTORY;
    Get "/directory/retrieve-owned-directories" => directory::owned, DIRECTORY;
    Get "/directory/retrieve-assigned-directories" => directory::assigned, DIRECTORY;
    Get "/directory/retrieve-directory/{directory}" => directory::retrieve, DIRECTORY;
    Post "/directory/create-directory-user" => directory::create_user, DIRECTORY;
    Post "/directory/update-user-information" => directory::update_user, DIRECTORY;
    Post "/directory/invite-profile" => directory::invite, DIRECTORY;
    Post "/directory/set-profile-password" => directory::set_password, DIRECTORY;
    Get "/directory/list-directory-invites" => directory::invites, DIRECTORY;
    Post "/directory/process-invitation" => directory::process, DIRECTORY;
    Get "/directory/retrieve-directory-profile/{directory}/{profile}" => directory::profile, DIRECTORY;
    Get "/directory/list-directory-users/{directory}" => directory::users, DIRECTORY;
    Get "/directory/directory-profiles-info/{directory}" => directory::profiles_info, DIRECTORY;
    Post "/directory/create-profile-device" => directory::create_device, DIRECTORY;
    Post "/directory/add-storage-device-to-profile" => directory::add_storage, DIRECTORY;
    Get "/directory/list-directory-devices/{directory}" => directory::devices, DIRECTORY;
    Post "/directory/store-directory-meta-information" => directory::store_meta, DIRECTORY;
    Post "/directory/create-directory-voting-pool" => directory::voting_pool, DIRECTORY;
    Get "/device-bus" => crate::device_bus::upgrade, Guard::Device;
    Get "/ws" => ws::upgrade, Guard::Public;
}

/// The entry serving `method` on `path` (a path of the table, with its `{…}` parameters).
pub fn lookup(method: &Method, path: &str) -> Option<&'static Route> {
    ROUTES
        .iter()
        .find(|r| r.path == path && r.verb.serves(method))
}

tokio::task_local! {
    /// The guard of the route the current request was routed to.
    static CURRENT: Guard;
}

async fn with_guard(
    axum::extract::State(guard): axum::extract::State<Guard>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    CURRENT.scope(guard, next.run(req)).await
}

/// The guard of the route being served; `None` outside a routed request.
pub fn current() -> Option<Guard> {
    CURRENT.try_with(|g| *g).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use privicore_domain::oauth::SCOPES;
    use std::collections::HashSet;

    #[test]
    fn every_method_and_path_has_one_entry() {
        let mut seen = HashSet::new();
        for r in ROUTES {
            assert!(
                seen.insert((r.verb, r.path)),
                "{:?} {} twice",
                r.verb,
                r.path
            );
        }
    }

    /// docs/api/oauth.md §1.1: whole sections map to one scope; every scope named exists.
    #[test]
    fn sections_carry_their_scope() {
        let sections = [
            ("/device/", "device:manage"),
            ("/storage/", "storage:manage"),
            ("/verified-authenticator/", "authenticator:manage"),
            ("/policy/", "policy:manage"),
            ("/directory/", "directory:manage"),
            ("/data-token/", "data-token:"),
        ];
        for r in ROUTES {
            if let Guard::Token(access) | Guard::OptionalToken(access) = r.guard
                && let Some(s) = access.scope
            {
                assert!(SCOPES.contains(&s), "{} names unknown scope {s}", r.path);
            }
            for (prefix, scope) in sections {
                if r.path.starts_with(prefix) {
                    let Guard::Token(access) = r.guard else {
                        panic!("{} is not a token route", r.path);
                    };
                    assert!(!access.profile_token_only, "{}", r.path);
                    assert!(
                        access.scope.is_some_and(|s| s.starts_with(scope)),
                        "{} needs {scope}",
                        r.path
                    );
                }
            }
        }
    }

    /// docs/api/oauth.md §1.3: exactly these answer `oauth.profile_token_required`.
    #[test]
    fn the_profile_token_only_list() {
        let only: HashSet<&str> = ROUTES
            .iter()
            .filter(|r| matches!(r.guard, Guard::Token(a) if a.profile_token_only))
            .map(|r| r.path)
            .collect();
        let spec: HashSet<&str> = [
            "/profile/change-password",
            "/profile/generate-token-qr",
            "/profile/reauthorize-authorization-token",
            "/public-key/register-public-key",
            "/profile/oauth-application-register",
            "/profile/retrieve-oauth-application-configuration",
            "/profile/oauth-application-request-authorization-code",
            "/profile/retrieve-oauth-application-list",
        ]
        .into();
        assert_eq!(only, spec);
    }

    /// The throttle reads "does not authenticate with the token" off the table by path
    /// alone, which holds while no such route has a path parameter.
    #[test]
    fn routes_without_a_token_have_fixed_paths() {
        for r in ROUTES {
            if !matches!(r.guard, Guard::Token(_) | Guard::OptionalToken(_)) {
                assert!(!r.path.contains('{'), "{}", r.path);
            }
        }
        assert!(crate::throttle::is_public("/profile/authenticate"));
        assert!(crate::throttle::is_public(
            "/oauth-application/obtain-access-token"
        ));
        assert!(!crate::throttle::is_public("/data-token/list-data-tokens"));
    }

    #[test]
    fn lookup_serves_head_as_get() {
        assert!(lookup(&Method::HEAD, "/health").is_some());
        assert!(lookup(&Method::POST, "/health").is_none());
        let both = lookup(&Method::POST, "/request-status/{command_id}").unwrap();
        assert!(matches!(both.guard, Guard::OptionalToken(_)));
    }
}
