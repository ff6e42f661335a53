//! The broker connection itself: the frame size it negotiates (which sets lapin's buffer
//! memory per connection) and what a bad URL says.

use aic_core::amqp::{FRAME_MAX, connect};
use aic_tests::harness::amqp_url;
use secrecy::SecretString;

fn with_query(url: &str, query: &str) -> SecretString {
    let sep = if url.contains('?') { '&' } else { '?' };
    SecretString::from(format!("{url}{sep}{query}"))
}

#[tokio::test]
async fn connections_ask_for_small_frames_unless_the_url_names_a_size() {
    let conn = connect(&SecretString::from(amqp_url()), "aic-test-frames")
        .await
        .expect("RabbitMQ is up");
    assert_eq!(conn.configuration().frame_max(), FRAME_MAX);
    // A message larger than a frame still travels whole (it is split into body frames).
    let ch = conn.create_channel().await.expect("channel");
    let queue = format!("aic-test-frames-{}", uuid::Uuid::new_v4());
    ch.queue_declare(
        queue.as_str().into(),
        lapin::options::QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..Default::default()
        },
        Default::default(),
    )
    .await
    .expect("queue");
    let body: Vec<u8> = (0..3 * FRAME_MAX as usize + 17)
        .map(|i| (i % 251) as u8)
        .collect();
    ch.basic_publish(
        "".into(),
        queue.as_str().into(),
        Default::default(),
        &body,
        Default::default(),
    )
    .await
    .expect("publish");
    let got = loop {
        if let Some(m) = ch
            .basic_get(queue.as_str().into(), Default::default())
            .await
            .expect("get")
        {
            break m;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(got.delivery.data, body);
    let _ = conn.close(200, "done".into()).await;

    let conn = connect(
        &with_query(&amqp_url(), "frame_max=65536"),
        "aic-test-frames",
    )
    .await
    .expect("RabbitMQ is up");
    assert_eq!(conn.configuration().frame_max(), 65536);
    let _ = conn.close(200, "done".into()).await;
}

#[tokio::test]
async fn a_malformed_url_is_refused_without_echoing_its_password() {
    for url in [
        "amqp:guest:pw-s3cret@localhost",
        "amqp://guest:pw-s3cret@localhost:notaport/%2f",
        "amqp://guest:pw-s3cret@localhost/%2f?frame_max=big",
        "http://guest:pw-s3cret@localhost/",
    ] {
        let err = connect(&SecretString::from(url), "aic-test-bad-url")
            .await
            .expect_err(url)
            .to_string();
        assert!(err.contains("invalid AMQP URL"), "{err}");
        assert!(!err.contains("s3cret"), "the password leaked: {err}");
    }
}
