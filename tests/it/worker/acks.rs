//! The durable worker's acknowledgements, against a real JetStream consumer: a held
//! message is reported in progress past the ack wait, one dropped unsettled comes
//! back, one acknowledged never does.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, AckKind};
use decnet_webhook::bus::acks::Acknowledger;
use futures::StreamExt;

use crate::helpers::{eventually, nats::NatsServer, WAIT};

const ACK_WAIT: Duration = Duration::from_secs(2);

async fn next(messages: &mut pull::Stream) -> jetstream::Message {
    tokio::time::timeout(WAIT, messages.next())
        .await
        .expect("a message within the wait")
        .expect("the pull goes on")
        .expect("a message, not an error")
}

fn body(m: &jetstream::Message) -> String {
    String::from_utf8_lossy(&m.payload).into_owned()
}

#[actix_rt::test]
async fn held_messages_stay_held_dropped_ones_return_and_acked_ones_are_done() {
    let nats = NatsServer::start_jetstream();
    let js = jetstream::new(nats.client().await);
    let stream = js
        .create_stream(jetstream::stream::Config {
            name: "ACKS".into(),
            subjects: vec!["acks.>".into()],
            ..Default::default()
        })
        .await
        .expect("stream");
    let consumer: jetstream::consumer::PullConsumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("acks".into()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: ACK_WAIT,
            ..Default::default()
        })
        .await
        .expect("consumer");
    for name in ["held", "dropped", "acked"] {
        js.publish(format!("acks.{name}"), name.into())
            .await
            .expect("publish")
            .await
            .expect("stored");
    }
    // Reported in progress well within the ack wait.
    let acks = Acknowledger::new(ACK_WAIT / 4);
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(1)
        .messages()
        .await
        .expect("pull");
    let held = acks.hold(next(&mut messages).await);
    let dropped = acks.hold(next(&mut messages).await);
    let acked = acks.hold(next(&mut messages).await);
    acked.ack();
    drop(dropped);

    // The server hands back what expired in stream order: had the held message (the
    // first) not been reported in progress, it would come back before the dropped one.
    let back = next(&mut messages).await;
    assert_eq!(body(&back), "dropped", "the first message back");
    back.ack_with(AckKind::Ack).await.expect("ack");
    held.ack();

    // Four deliveries in all: the three, and the dropped one again.
    eventually(WAIT, "every message settled", || async {
        let info = stream
            .consumer_info("acks")
            .await
            .map_err(|e| e.to_string())?;
        let state = (info.num_ack_pending, info.delivered.consumer_sequence);
        (state == (0, 4))
            .then_some(())
            .ok_or(format!("(ack pending, delivered) = {state:?}"))
    })
    .await;
}
