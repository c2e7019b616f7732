//! `privicore status`: is the engine up, who am I, and how are my devices, at a glance.

use super::output::{self, BAD, DIM, GOOD, HEAD, WARN, paint};
use super::{LocalProfile, login};
use anyhow::Context;
use privicore_client::Client;
use serde_json::{Value, json};
use std::io::Write;

/// Gathers the report. An engine that does not answer is an error (with its hint); one
/// that answers unhealthy is reported.
pub async fn gather(api: &str, profile: Option<&LocalProfile>) -> anyhow::Result<Value> {
    let health = Client::new(api)
        .get("/health")
        .await
        .with_context(|| format!("engine at {api} unreachable"))?;
    let mut report = json!({
        "api": api,
        "engine": health.json(),
        "httpStatus": health.status,
        "profile": null,
        "devices": null,
        "storageDevices": null,
    });
    let Some(profile) = profile else {
        return Ok(report);
    };
    let me = login(profile).await?;
    let info = me.retrieve_profile_id().await?;
    report["profile"] = json!({
        "profileId": info.profile_id,
        "username": info.username,
        "kind": info.kind,
        "publicKeyRegistered": info.public_key_registered,
    });
    report["devices"] = me.list_devices("?perPage=100").await?["items"].take();
    report["storageDevices"] = me.list_storage_devices("?perPage=100").await?["items"].take();
    Ok(report)
}

fn health_style(word: &str) -> anstyle::Style {
    match word {
        "ok" => GOOD,
        "degraded" | "low_space" => WARN,
        _ => BAD,
    }
}

/// The report for people: one line per part, coloured where the terminal shows it.
pub fn render(report: &Value) -> String {
    let mut out = String::new();
    let engine = &report["engine"];
    let status = engine["status"].as_str().unwrap_or("unknown");
    out.push_str(&format!(
        "{}  {}  {} {}\n",
        paint(HEAD, "engine "),
        report["api"].as_str().unwrap_or("-"),
        paint(health_style(status), status),
        paint(
            DIM,
            &format!("(version {})", engine["version"].as_str().unwrap_or("?"))
        ),
    ));
    if let Some(checks) = engine["checks"].as_object() {
        let parts: Vec<String> = checks
            .iter()
            .map(|(name, v)| {
                let v = v.as_str().unwrap_or("?");
                format!("{name} {}", paint(health_style(v), v))
            })
            .collect();
        out.push_str(&format!("         {}\n", parts.join(", ")));
    }
    let profile = &report["profile"];
    if profile.is_null() {
        out.push_str(&format!(
            "{}  {}\n",
            paint(HEAD, "profile"),
            paint(
                WARN,
                "not signed in (run `privicore profile create --username <name>`)"
            )
        ));
        return out;
    }
    let key = if profile["publicKeyRegistered"] == true {
        paint(GOOD, "key registered")
    } else {
        paint(WARN, "no public key")
    };
    out.push_str(&format!(
        "{}  {}  {}  {key}\n",
        paint(HEAD, "profile"),
        profile["username"].as_str().unwrap_or("-"),
        paint(DIM, profile["profileId"].as_str().unwrap_or("-")),
    ));
    let devices = report["devices"].as_array().map_or(&[][..], Vec::as_slice);
    let storage = report["storageDevices"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    let has_role = |d: &Value, role: &str| {
        d["roles"]
            .as_array()
            .is_some_and(|r| r.iter().any(|x| x == role))
    };
    let authenticators = devices
        .iter()
        .filter(|d| has_role(d, "authenticator"))
        .count();
    let online = storage.iter().filter(|d| d["online"] == true).count();
    out.push_str(&format!(
        "{}  {} devices: {} storage ({} online), {} authenticator(s)\n",
        paint(HEAD, "devices"),
        devices.len(),
        storage.len(),
        paint(
            if online == storage.len() { GOOD } else { WARN },
            &online.to_string()
        ),
        authenticators,
    ));
    let mut by_name: Vec<&Value> = storage.iter().collect();
    by_name.sort_by_key(|d| d["name"].as_str().unwrap_or_default());
    for d in by_name {
        let replicas = &d["replicas"];
        let missing = replicas["missing"].as_u64().unwrap_or(0);
        let pending = replicas["pending"].as_u64().unwrap_or(0);
        let presence = if d["online"] == true {
            paint(GOOD, "online ")
        } else {
            paint(BAD, "offline")
        };
        let replica_text = format!(
            "{} confirmed, {pending} pending, {missing} missing",
            replicas["confirmed"].as_u64().unwrap_or(0)
        );
        let replica_style = if missing > 0 {
            BAD
        } else if pending > 0 {
            WARN
        } else {
            GOOD
        };
        out.push_str(&format!(
            "         {}  {presence}  replicas {}\n",
            d["name"].as_str().unwrap_or("-"),
            paint(replica_style, &replica_text),
        ));
    }
    out
}

pub fn print(report: &Value, json: bool) -> anyhow::Result<()> {
    let mut out = output::stdout();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(report)?)?;
    } else {
        write!(out, "{}", render(report))?;
    }
    Ok(())
}
