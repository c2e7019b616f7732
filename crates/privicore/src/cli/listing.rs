//! `privicore devices list` and `privicore tokens list`: one page of the engine's listing,
//! as columns or (`--json`) as the engine answered it.

use super::output::{self, Column, col};
use super::{LocalProfile, login};
use serde_json::Value;

pub const DEVICE_COLUMNS: &[Column] = &[
    col("DEVICE", "/deviceIdentifier"),
    col("NAME", "/name"),
    col("STATUS", "/status"),
    col("ROLES", "/roles"),
    col("ONLINE", "/online"),
    col("LAST SEEN", "/lastSeenAt"),
];

pub const TOKEN_COLUMNS: &[Column] = &[
    col("TOKEN", "/token"),
    col("STATUS", "/status"),
    col("CONTEXT", "/context"),
    col("FILE", "/meta/file/fileName"),
    col("VERSION", "/version"),
    col("STORED", "/storedSize"),
    col("CONFIRMED", "/replicas/confirmed"),
    col("CREATED", "/createdAt"),
];

/// Page and filters of `tokens list` (docs/api/data-tokens.md §3.9); each maps to one
/// query parameter of the listing, so filtering happens in the engine.
#[derive(clap::Args, Debug, Default)]
pub struct TokenFilters {
    /// Exact context, or a prefix with a trailing `*` (`/finance/*`).
    #[arg(long)]
    pub context: Option<String>,
    /// `active` (default), `reserved`, `exchanging` or `all`.
    #[arg(long)]
    pub status: Option<String>,
    /// One token.
    #[arg(long)]
    pub token: Option<String>,
    /// File name, exact or a prefix with a trailing `*`.
    #[arg(long)]
    pub file_name: Option<String>,
    /// File extension (case-insensitive).
    #[arg(long)]
    pub extension: Option<String>,
    /// `meta.data.type`, exact.
    #[arg(long = "type")]
    pub data_type: Option<String>,
    /// Information security risk classification (case-insensitive).
    #[arg(long)]
    pub classification: Option<String>,
    #[arg(long, default_value_t = 1)]
    pub page: u32,
    /// 1 to 100.
    #[arg(long, default_value_t = 25)]
    pub per_page: u32,
}

impl TokenFilters {
    /// The listing's query string, values percent-encoded.
    pub fn query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("page", &self.page.to_string());
        q.append_pair("perPage", &self.per_page.to_string());
        let filters = [
            ("filters[context]", &self.context),
            ("filters[status]", &self.status),
            ("filters[token]", &self.token),
            ("filters[meta.file.fileName]", &self.file_name),
            ("filters[meta.file.extension]", &self.extension),
            ("filters[meta.data.type]", &self.data_type),
            (
                "filters[meta.information_security_risk.classification]",
                &self.classification,
            ),
        ];
        for (name, value) in filters {
            if let Some(value) = value {
                q.append_pair(name, value);
            }
        }
        format!("?{}", q.finish())
    }
}

pub async fn tokens(profile: &LocalProfile, filters: &TokenFilters) -> anyhow::Result<Value> {
    Ok(login(profile)
        .await?
        .list_data_tokens(&filters.query())
        .await?)
}

pub async fn devices(profile: &LocalProfile, page: u32, per_page: u32) -> anyhow::Result<Value> {
    Ok(login(profile)
        .await?
        .list_devices(&format!("?page={page}&perPage={per_page}"))
        .await?)
}

pub fn print_tokens(answer: &Value, json: bool) -> anyhow::Result<()> {
    output::listing(answer, TOKEN_COLUMNS, json)
}

pub fn print_devices(answer: &Value, json: bool) -> anyhow::Result<()> {
    output::listing(answer, DEVICE_COLUMNS, json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_the_listing_query() {
        let filters = TokenFilters {
            context: Some("/finance/*".into()),
            extension: Some("pdf".into()),
            page: 2,
            per_page: 10,
            ..Default::default()
        };
        assert_eq!(
            filters.query(),
            "?page=2&perPage=10&filters%5Bcontext%5D=%2Ffinance%2F*\
             &filters%5Bmeta.file.extension%5D=pdf"
        );
    }
}
