//! What each route of the table does, for the OpenAPI document: summary, fields, the
//! documented answer and the error keys the route answers beyond those its guard and body
//! parsing add (`super::errors`). Exactly one entry per table route
//! (`super::tests::every_route_is_described_once`); one file per section of docs/api.

mod devices;
mod directory;
mod governance;
mod oauth;
mod profile;
mod tokens;

use super::model::{Described, Mode};
use crate::routes::table::Verb::Get;

/// Every description, section by section.
pub fn all() -> impl Iterator<Item = &'static Described> {
    [
        profile::ROUTES,
        oauth::ROUTES,
        tokens::ROUTES,
        devices::ROUTES,
        governance::ROUTES,
        directory::ROUTES,
        EXTRA,
    ]
    .into_iter()
    .flatten()
}

/// The WebSocket upgrades and the documents about the API.
pub static EXTRA: &[Described] = &[
    Described {
        verb: Get,
        path: "/device-bus",
        tag: "Device bus",
        summary: "Embedded device bus (WebSocket upgrade)",
        spec: "devices-and-storage.md §6",
        mode: Mode::Upgrade,
        fields: &[],
        reply: None,
        errors: &["request.unknown_route", "request.malformed"],
        async_errors: &[],
    },
    Described {
        verb: Get,
        path: "/ws",
        tag: "WebSocket",
        summary: "Client WebSocket (also on the WebSocket listener, any path)",
        spec: "README.md §8",
        mode: Mode::Upgrade,
        fields: &[],
        reply: None,
        errors: &[],
        async_errors: &[],
    },
    Described {
        verb: Get,
        path: "/openapi.json",
        tag: "Utility",
        summary: "This OpenAPI 3.1 document",
        spec: "README.md",
        mode: Mode::Sync,
        fields: &[],
        reply: None,
        errors: &[],
        async_errors: &[],
    },
    Described {
        verb: Get,
        path: "/asyncapi.json",
        tag: "Utility",
        summary: "AsyncAPI 3.0 document of the WebSocket and device bus messages",
        spec: "README.md §8",
        mode: Mode::Sync,
        fields: &[],
        reply: None,
        errors: &[],
        async_errors: &[],
    },
    Described {
        verb: Get,
        path: "/docs",
        tag: "Utility",
        summary: "API reference page (self-contained HTML)",
        spec: "README.md",
        mode: Mode::Page,
        fields: &[],
        reply: None,
        errors: &[],
        async_errors: &[],
    },
];
