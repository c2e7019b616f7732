//! AsyncAPI 3.0: the client WebSocket (docs/api/README.md §8) and the embedded device bus
//! (docs/api/devices-and-storage.md §6, ballots in voting-and-policy.md §6.2). Actions are
//! the engine's: it *receives* what clients and devices send and *sends* events.

use privicore_wire::bus::ballots;
use serde_json::{Map, Value, json};

fn string() -> Value {
    json!({ "type": "string" })
}

fn obj(properties: Value, required: &[&str]) -> Value {
    json!({ "type": "object", "properties": properties, "required": required })
}

/// A frame `{"data": {...}}` whose `type` is `kind`.
fn event(kind: &str, properties: Value, required: &[&str]) -> Value {
    let mut props = properties;
    props["type"] = json!({ "const": kind });
    let mut req = vec!["type"];
    req.extend_from_slice(required);
    obj(json!({ "data": obj(props, &req) }), &["data"])
}

/// A reply `{"correlationId", "status", "data"}`.
fn reply(data: Value) -> Value {
    obj(
        json!({ "correlationId": {}, "status": { "type": "integer" }, "data": data }),
        &["status", "data"],
    )
}

fn action(name: &str, data: Value) -> Value {
    obj(
        json!({ "action": { "const": name }, "data": data }),
        &["action"],
    )
}

fn message(name: &str, summary: &str, payload: Value) -> (String, Value) {
    (
        name.to_owned(),
        json!({ "name": name, "summary": summary, "contentType": "application/json", "payload": payload }),
    )
}

fn client_messages() -> Map<String, Value> {
    let error_data = obj(
        json!({ "message": string(), "code": string(), "channelId": string() }),
        &["message", "code"],
    );
    [
        message(
            "joinChannel",
            "Join the caller's profile channel with a profile or OAuth access token.",
            action(
                "joinChannel",
                obj(json!({ "authorizationToken": string(), "correlationId": {} }), &["authorizationToken"]),
            ),
        ),
        message(
            "leaveChannel",
            "Leave the joined channel.",
            action("leaveChannel", obj(json!({ "channelId": string(), "correlationId": {} }), &["channelId"])),
        ),
        message("ping", "Keep-alive; answered with `pong`.", action("ping", json!({ "type": ["object", "null"] }))),
        message(
            "reply",
            "Answer to an action: `joined`, `left`, `pong`, or an error (`request.malformed`, `request.unknown_action`, `channel.not_found`, `auth.*`).",
            reply(json!({ "type": "object", "properties": { "channelId": string(), "message": string(), "code": string() } })),
        ),
        message(
            "commandStatus",
            "Outcome of a command (`X-DPT-CAB-ID`): `command_status` 2 succeeded with the result in `body`, 3 failed with the key in `body`.",
            event(
                "X-DPT-CAB-ID",
                json!({ "id": { "type": "string", "format": "uuid" }, "command_status": { "type": "integer" }, "body": {} }),
                &["id", "command_status"],
            ),
        ),
        message(
            "dataRequestResult",
            "Result of Request data via token: `output_type` 0 = base64 payload in `body`, 1 = single-use download URL.",
            event(
                "X-DPT-CAB-REQUEST-ID",
                json!({
                    "id": string(), "output_type": { "enum": [0, 1] }, "data_context": string(),
                    "body": string(), "commandId": string(), "token": string(), "size": { "type": "integer" },
                }),
                &["id", "output_type", "body"],
            ),
        ),
        message(
            "streamReady",
            "The download of a data request can start.",
            event(
                "STREAM-READY",
                json!({ "id": string(), "requestId": string(), "streamUrl": string(), "expiresAt": string() }),
                &["id", "streamUrl"],
            ),
        ),
        message(
            "directoryInvitation",
            "An invitation to a directory, to the invitee (docs/api/directory.md §1.7).",
            event("DIRECTORY-INVITATION", json!({ "id": string() }), &["id"]),
        ),
        message(
            "tokenEnded",
            "The joined token expired, was revoked or replaced (status 401; `code` says which); a blocked profile's socket is then closed 1008.",
            reply(error_data.clone()),
        ),
        message(
            "channelLagged",
            "The socket fell behind (`channel.lagged`, status 503) and is closed 1013; join again for the replay.",
            reply(error_data),
        ),
    ]
    .into_iter()
    .collect()
}

const BUS_TYPES: &[&str] = &[
    "device.hello",
    "device.welcome",
    "device.rejected",
    "device.heartbeat",
    "device.roles_changed",
    "device.revoked",
    "bus.ack",
    "storage.store_chunk",
    "storage.stored",
    "storage.store_failed",
    "storage.fetch",
    "storage.fetch_chunk",
    "storage.fetch_failed",
    "storage.delete",
    "storage.deleted",
    "storage.inventory_request",
    "storage.inventory",
    "storage.sync_complete",
    ballots::ISSUE,
    ballots::WITHDRAW,
    ballots::VOTE,
    ballots::VOTE_RESULT,
];

/// What the engine sends on the bus; the rest devices send.
fn engine_sends(kind: &str) -> bool {
    matches!(
        kind,
        "device.welcome"
            | "device.rejected"
            | "device.roles_changed"
            | "device.revoked"
            | "storage.store_chunk"
            | "storage.fetch"
            | "storage.delete"
            | "storage.inventory_request"
            | "ballot.issue"
            | "ballot.withdraw"
            | "ballot.vote_result"
    )
}

fn bus_body(kind: &str) -> Value {
    match kind {
        ballots::ISSUE => obj(
            json!({
                "ballotId": string(), "poolId": string(), "attempt": { "type": "integer" },
                "maxAttempts": { "type": "integer" }, "origin": { "enum": ["policy", "manual", "directory"] },
                "title": string(), "question": string(), "event": {}, "policy": {}, "attributes": {},
                "requestedBy": {}, "strategy": string(), "openedAt": string(), "expiresAt": string(),
                "mac": string(),
            }),
            &[
                "ballotId",
                "poolId",
                "attempt",
                "title",
                "question",
                "expiresAt",
                "mac",
            ],
        ),
        ballots::WITHDRAW => obj(
            json!({ "ballotId": string(), "poolId": string(), "attempt": { "type": "integer" }, "reason": string() }),
            &["ballotId"],
        ),
        ballots::VOTE => obj(
            json!({ "ballotId": string(), "decision": { "enum": ["yes", "no"] }, "votedAt": string(), "mac": string() }),
            &["ballotId", "decision", "votedAt", "mac"],
        ),
        ballots::VOTE_RESULT => obj(
            json!({ "ballotId": string(), "accepted": { "type": "boolean" }, "error": { "type": ["string", "null"] }, "poolStatus": { "type": ["string", "null"] } }),
            &["ballotId", "accepted"],
        ),
        _ => json!({ "type": "object" }),
    }
}

fn bus_messages() -> Map<String, Value> {
    BUS_TYPES
        .iter()
        .map(|kind| {
            let payload = obj(
                json!({
                    "v": { "const": privicore_wire::bus::PROTOCOL_VERSION },
                    "type": { "const": kind },
                    "messageId": string(),
                    "correlationId": { "type": ["string", "null"] },
                    "deviceIdentifier": string(),
                    "sentAt": string(),
                    "body": bus_body(kind),
                }),
                &[
                    "v",
                    "type",
                    "messageId",
                    "deviceIdentifier",
                    "sentAt",
                    "body",
                ],
            );
            let from = if engine_sends(kind) {
                "engine → device"
            } else {
                "device → engine"
            };
            message(kind, &format!("`{kind}` ({from})."), payload)
        })
        .collect()
}

fn refs(channel: &str, names: impl Iterator<Item = String>) -> Value {
    Value::Array(
        names
            .map(|n| json!({ "$ref": format!("#/channels/{channel}/messages/{n}") }))
            .collect(),
    )
}

pub fn build() -> Value {
    let client = client_messages();
    let bus = bus_messages();
    let client_ref = |name: &str| json!({ "$ref": format!("#/channels/client/messages/{name}") });
    let mut operations = json!({
        "receiveClientActions": {
            "action": "receive",
            "channel": { "$ref": "#/channels/client" },
            "summary": "joinChannel, leaveChannel, ping; each answered with a reply.",
            "messages": [client_ref("joinChannel"), client_ref("leaveChannel"), client_ref("ping")],
            "reply": { "channel": { "$ref": "#/channels/client" }, "messages": [client_ref("reply")] },
        },
        "sendClientEvents": {
            "action": "send",
            "channel": { "$ref": "#/channels/client" },
            "summary": "Events of the joined profile, and notices that end the channel.",
            "messages": refs("client", ["commandStatus", "dataRequestResult", "streamReady", "directoryInvitation", "tokenEnded", "channelLagged"].into_iter().map(String::from)),
        },
    });
    operations["sendDeviceBus"] = json!({
        "action": "send",
        "channel": { "$ref": "#/channels/deviceBus" },
        "messages": refs("deviceBus", BUS_TYPES.iter().filter(|k| engine_sends(k)).map(|k| (*k).to_owned())),
    });
    operations["receiveDeviceBus"] = json!({
        "action": "receive",
        "channel": { "$ref": "#/channels/deviceBus" },
        "messages": refs("deviceBus", BUS_TYPES.iter().filter(|k| !engine_sends(k)).map(|k| (*k).to_owned())),
    });
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "privicore WebSocket and device bus",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Frames are JSON text. Clients join their profile's channel with `joinChannel`; commands accepted with 202 report their outcome here. Devices speak the bus protocol at `/device-bus` with `Authorization: Basic` device credentials.",
        },
        "servers": {
            "websocket": { "host": "127.0.0.1:8083", "protocol": "ws", "description": "WebSocket listener: any path." },
            "api": { "host": "127.0.0.1:8009", "protocol": "ws", "description": "API listener: `/ws` and `/device-bus`." },
        },
        "channels": {
            "client": {
                "address": "/ws",
                "description": "The client socket (`/ws` on the API listener, any path on the WebSocket listener).",
                "servers": [{ "$ref": "#/servers/websocket" }, { "$ref": "#/servers/api" }],
                "messages": client,
            },
            "deviceBus": {
                "address": "/device-bus",
                "servers": [{ "$ref": "#/servers/api" }],
                "messages": bus,
            },
        },
        "operations": operations,
    })
}
