//! The shape of a route description (see `described/`).

use crate::routes::table::Verb;

/// How a route answers when it succeeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 200 with a JSON body.
    Sync,
    /// 202 `{"commandId"}`; the result comes as a `command_status` event.
    Command,
    /// 101: a WebSocket.
    Upgrade,
    /// 200 with a document of another type (HTML).
    Page,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum In {
    Body,
    Query,
}

/// A field's JSON type as documented; form and multipart carry the same names as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Str,
    Uuid,
    Int,
    Num,
    Bool,
    Arr,
    Obj,
}

#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub at: In,
    pub ty: Ty,
    pub required: bool,
    pub note: &'static str,
}

/// One route of the table, described.
#[derive(Debug)]
pub struct Described {
    pub verb: Verb,
    pub path: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    /// Where docs/api specifies it.
    pub spec: &'static str,
    pub mode: Mode,
    pub fields: &'static [Field],
    /// The documented answer (Sync) or command result (Command), as JSON.
    pub reply: Option<&'static str>,
    /// Error keys the route itself answers synchronously (guard and body keys are added).
    pub errors: &'static [&'static str],
    /// Keys a command can fail with later (`command_status: 3`).
    pub async_errors: &'static [&'static str],
}

/// A body field.
pub const fn body(name: &'static str, ty: Ty, required: bool, note: &'static str) -> Field {
    Field {
        name,
        at: In::Body,
        ty,
        required,
        note,
    }
}

/// A query field.
pub const fn query(name: &'static str, ty: Ty, required: bool, note: &'static str) -> Field {
    Field {
        name,
        at: In::Query,
        ty,
        required,
        note,
    }
}
