//! The device bus port over a real broker, seen from both ends: the engine's adapter and
//! a plain client connection in the place of a device.

mod common;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Consumer};
use privicore_bus_amqp::{AmqpDeviceBus, DeviceUsers, Names, remove_topology};
use privicore_domain::ports::DeviceBus;
use privicore_wire::bus::{Envelope, kind};
use serde_json::json;
use std::time::Duration;

fn device() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn message(kind: &str, device: &str, n: u64) -> Envelope {
    Envelope::new(kind, device, None, json!({ "n": n }))
}

fn n_of(env: &Envelope) -> u64 {
    env.body::<serde_json::Value>().unwrap()["n"]
        .as_u64()
        .unwrap()
}

async fn consume(channel: &Channel, queue: &str) -> Consumer {
    channel
        .basic_qos(16, BasicQosOptions::default())
        .await
        .unwrap();
    channel
        .basic_consume(
            queue,
            "",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap()
}

async fn next(consumer: &mut Consumer) -> lapin::message::Delivery {
    tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("a delivery within 10 s")
        .expect("the consumer is open")
        .expect("a delivery")
}

/// What a device publishes: to the engine exchange, as `user` (None: no user_id).
async fn publish_as_device(
    channel: &Channel,
    names: &Names,
    routing_key: &str,
    user: Option<&str>,
    env: &Envelope,
) {
    let mut props = BasicProperties::default().with_content_type("application/json".into());
    if let Some(user) = user {
        props = props.with_user_id(user.into());
    }
    channel
        .basic_publish(
            &names.engine_exchange(),
            routing_key,
            BasicPublishOptions::default(),
            env.to_text().as_bytes(),
            props,
        )
        .await
        .unwrap()
        .await
        .unwrap();
}

async fn next_env(inbox: &mut futures_util::stream::BoxStream<'static, Envelope>) -> Envelope {
    tokio::time::timeout(Duration::from_secs(10), inbox.next())
        .await
        .expect("a device message within 10 s")
        .expect("the inbox is open")
}

fn guest() -> DeviceUsers {
    DeviceUsers::Shared("guest".into())
}

#[tokio::test]
async fn a_message_reaches_the_device_queue_with_its_properties_and_leaves_on_ack() {
    let Some(url) = common::url("a_message_reaches_the_device_queue") else {
        return;
    };
    let names = common::names();
    let bus = AmqpDeviceBus::new(common::broker(&url, &names).await, guest());
    let dev = device();
    let sent = message(kind::FETCH, &dev, 7);
    bus.send(&dev, sent.clone()).await.unwrap();

    let client = common::client(&url).await;
    let channel = client.create_channel().await.unwrap();
    let mut consumer = consume(&channel, &names.device_queue(&dev)).await;
    let delivery = next(&mut consumer).await;
    let env = Envelope::parse(std::str::from_utf8(&delivery.data).unwrap()).unwrap();
    assert_eq!(n_of(&env), 7);
    let props = &delivery.properties;
    assert_eq!(props.delivery_mode(), &Some(2));
    assert_eq!(props.kind().as_ref().unwrap().as_str(), kind::FETCH);
    assert_eq!(
        props.message_id().as_ref().unwrap().as_str(),
        sent.message_id
    );
    assert_eq!(props.expiration().as_ref().unwrap().as_str(), "60000");
    delivery.ack(BasicAckOptions::default()).await.unwrap();
    channel.close(200, "done").await.unwrap();

    let check = client.create_channel().await.unwrap();
    let queue = check
        .queue_declare(
            &names.device_queue(&dev),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(queue.message_count(), 0, "acknowledged, so gone");
    client.close(200, "done").await.unwrap();
    remove_topology(&url, &names, &[&dev]).await.unwrap();
}

#[tokio::test]
async fn a_message_not_acknowledged_by_a_device_that_died_comes_again() {
    let Some(url) = common::url("a_message_not_acknowledged") else {
        return;
    };
    let names = common::names();
    let bus = AmqpDeviceBus::new(common::broker(&url, &names).await, guest());
    let dev = device();
    bus.send(&dev, message(kind::STORE_CHUNK, &dev, 1))
        .await
        .unwrap();

    let first = common::client(&url).await;
    let channel = first.create_channel().await.unwrap();
    let mut consumer = consume(&channel, &names.device_queue(&dev)).await;
    let delivery = next(&mut consumer).await;
    assert!(!delivery.redelivered);
    // The device dies before it has staged the chunk: no acknowledgement.
    first.close(320, "device died").await.unwrap();

    let second = common::client(&url).await;
    let channel = second.create_channel().await.unwrap();
    let mut consumer = consume(&channel, &names.device_queue(&dev)).await;
    let again = next(&mut consumer).await;
    assert!(again.redelivered);
    let env = Envelope::parse(std::str::from_utf8(&again.data).unwrap()).unwrap();
    assert_eq!(n_of(&env), 1);
    again.ack(BasicAckOptions::default()).await.unwrap();
    second.close(200, "done").await.unwrap();
    remove_topology(&url, &names, &[&dev]).await.unwrap();
}

#[tokio::test]
async fn the_inbox_takes_only_messages_of_the_devices_own_broker_user_and_key() {
    let Some(url) = common::url("the_inbox_takes_only") else {
        return;
    };
    let names = common::names();
    let bus = AmqpDeviceBus::new(common::broker(&url, &names).await, guest());
    let mut inbox = bus.inbox().await.unwrap();
    assert!(bus.inbox().await.is_err(), "one consumer per engine");
    let dev = device();
    let other = device();
    let client = common::client(&url).await;
    let channel = client.create_channel().await.unwrap();
    let key = Names::device_routing_key(&dev);
    // No user_id, another device's routing key: both dropped.
    publish_as_device(
        &channel,
        &names,
        &key,
        None,
        &message(kind::HEARTBEAT, &dev, 1),
    )
    .await;
    let other_key = Names::device_routing_key(&other);
    publish_as_device(
        &channel,
        &names,
        &other_key,
        Some("guest"),
        &message(kind::HEARTBEAT, &dev, 2),
    )
    .await;
    publish_as_device(
        &channel,
        &names,
        &key,
        Some("guest"),
        &message(kind::HEARTBEAT, &dev, 3),
    )
    .await;
    let env = tokio::time::timeout(Duration::from_secs(10), inbox.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n_of(&env), 3, "the first two were dropped");
    assert_eq!(env.device_identifier, dev);
    assert!(
        bus.connected(&dev),
        "a message of the device shows it connected"
    );
    client.close(200, "done").await.unwrap();
    remove_topology(&url, &names, &[&dev]).await.unwrap();
}

#[tokio::test]
async fn with_broker_users_per_device_a_message_of_another_user_is_dropped() {
    let Some(url) = common::url("with_broker_users_per_device") else {
        return;
    };
    let names = common::names();
    let users = DeviceUsers::PerDevice {
        prefix: "device-".into(),
    };
    let bus = AmqpDeviceBus::new(common::broker(&url, &names).await, users);
    let mut inbox = bus.inbox().await.unwrap();
    let dev = device();
    let client = common::client(&url).await;
    let channel = client.create_channel().await.unwrap();
    // Signed in as guest, not as device-<dev>.
    publish_as_device(
        &channel,
        &names,
        &Names::device_routing_key(&dev),
        Some("guest"),
        &message(kind::HEARTBEAT, &dev, 1),
    )
    .await;
    let nothing = tokio::time::timeout(Duration::from_millis(500), inbox.next()).await;
    assert!(nothing.is_err(), "dropped");
    let count = channel
        .queue_declare(
            &names.inbox_queue(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap()
        .message_count();
    assert_eq!(
        count, 0,
        "dropped messages are acknowledged, not left in the queue"
    );
    client.close(200, "done").await.unwrap();
    remove_topology(&url, &names, &[&dev]).await.unwrap();
}

#[tokio::test]
async fn connected_follows_the_device_and_its_consumer_and_disconnect_ends_it() {
    let Some(url) = common::url("connected_follows_the_consumer") else {
        return;
    };
    let names = common::names();
    let bus = AmqpDeviceBus::new(common::broker(&url, &names).await, guest());
    let mut inbox = bus.inbox().await.unwrap();
    let dev = device();
    assert!(!bus.connected(&dev));
    bus.send(&dev, message(kind::ROLES_CHANGED, &dev, 1))
        .await
        .unwrap();
    let client = common::client(&url).await;
    let channel = client.create_channel().await.unwrap();
    let mut consumer = consume(&channel, &names.device_queue(&dev)).await;
    // A device consumes, then says hello: its message shows it connected at once.
    let hello = message(kind::HELLO, &dev, 9);
    publish_as_device(
        &channel,
        &names,
        &Names::device_routing_key(&dev),
        Some("guest"),
        &hello,
    )
    .await;
    assert_eq!(n_of(&next_env(&mut inbox).await), 9);
    assert!(bus.connected(&dev));
    let first = next(&mut consumer).await;
    first.ack(BasicAckOptions::default()).await.unwrap();

    // Queued for a disconnected device and then dropped by disconnect.
    bus.disconnect(&dev).await;
    assert!(!bus.connected(&dev));
    let ended = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("the broker cancels the device's consumer");
    assert!(ended.is_none(), "cancelled, not a delivery");
    // The queue is there again, empty, for the device's next connection.
    let queue = channel
        .queue_declare(
            &names.device_queue(&dev),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(queue.message_count(), 0);
    assert_eq!(queue.consumer_count(), 0);
    common::eventually("not connected", || !bus.connected(&dev)).await;
    client.close(200, "done").await.unwrap();
    remove_topology(&url, &names, &[&dev]).await.unwrap();
}

#[tokio::test]
async fn an_answer_reaches_the_replica_that_asked_and_heartbeats_reach_every_replica() {
    let Some(url) = common::url("an_answer_reaches_the_replica_that_asked") else {
        return;
    };
    let names = common::names();
    let a = AmqpDeviceBus::new(common::broker(&url, &names).await, guest());
    let b = AmqpDeviceBus::new(common::broker(&url, &names).await, guest());
    let mut inbox_a = a.inbox().await.unwrap();
    let mut inbox_b = b.inbox().await.unwrap();
    let dev = device();
    let fetch = message(kind::FETCH, &dev, 1);
    a.send(&dev, fetch.clone()).await.unwrap();

    let client = common::client(&url).await;
    let channel = client.create_channel().await.unwrap();
    let mut consumer = consume(&channel, &names.device_queue(&dev)).await;
    let delivery = next(&mut consumer).await;
    let reply_to = delivery
        .properties
        .reply_to()
        .as_ref()
        .expect("engine messages name their replica")
        .to_string();
    assert_eq!(reply_to, Names::reply_to(a.replica()));
    delivery.ack(BasicAckOptions::default()).await.unwrap();

    let answer = Envelope::new(
        kind::FETCH_FAILED,
        &dev,
        Some(&fetch.message_id),
        json!({ "n": 2 }),
    );
    publish_as_device(
        &channel,
        &names,
        &format!("{reply_to}.{dev}"),
        Some("guest"),
        &answer,
    )
    .await;
    let beat = message(kind::HEARTBEAT, &dev, 3);
    publish_as_device(
        &channel,
        &names,
        &Names::presence_routing_key(&dev),
        Some("guest"),
        &beat,
    )
    .await;
    // Only heartbeats may use the presence key.
    let hello = message(kind::HELLO, &dev, 4);
    publish_as_device(
        &channel,
        &names,
        &Names::presence_routing_key(&dev),
        Some("guest"),
        &hello,
    )
    .await;

    let first_a: Envelope = next_env(&mut inbox_a).await;
    assert_eq!(
        (first_a.kind.as_str(), n_of(&first_a)),
        (kind::FETCH_FAILED, 2)
    );
    let second_a: Envelope = next_env(&mut inbox_a).await;
    assert_eq!(
        n_of(&second_a),
        3,
        "the heartbeat reaches the replica that asked"
    );
    let first_b: Envelope = next_env(&mut inbox_b).await;
    assert_eq!(
        (first_b.kind.as_str(), n_of(&first_b)),
        (kind::HEARTBEAT, 3),
        "the other replica hears the heartbeat, not the answer"
    );
    assert!(a.connected(&dev) && b.connected(&dev));
    client.close(200, "done").await.unwrap();
    remove_topology(&url, &names, &[&dev]).await.unwrap();
}

#[tokio::test]
async fn a_device_queue_lost_on_the_broker_is_declared_again_on_the_next_send() {
    let Some(url) = common::url("a_device_queue_lost_on_the_broker") else {
        return;
    };
    let names = common::names();
    let bus = AmqpDeviceBus::new(common::broker(&url, &names).await, guest());
    let dev = device();
    bus.send(&dev, message(kind::DELETE, &dev, 1))
        .await
        .unwrap();
    let client = common::client(&url).await;
    let channel = client.create_channel().await.unwrap();
    // The broker loses the queue (its data was wiped, an operator deleted it).
    channel
        .queue_delete(
            &names.device_queue(&dev),
            lapin::options::QueueDeleteOptions::default(),
        )
        .await
        .unwrap();
    bus.send(&dev, message(kind::DELETE, &dev, 2))
        .await
        .unwrap();
    let mut consumer = consume(&channel, &names.device_queue(&dev)).await;
    let delivery = next(&mut consumer).await;
    let env = Envelope::parse(std::str::from_utf8(&delivery.data).unwrap()).unwrap();
    assert_eq!(n_of(&env), 2, "the second message was not lost");
    delivery.ack(BasicAckOptions::default()).await.unwrap();
    client.close(200, "done").await.unwrap();
    remove_topology(&url, &names, &[&dev]).await.unwrap();
}
