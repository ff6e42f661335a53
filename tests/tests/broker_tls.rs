//! RabbitMQ over TLS (`amqps://`), its certificate signed by a private CA the URL names
//! (`cacertfile`), the client presenting a certificate of its own (`certfile`, `keyfile`) to a
//! node that asks for one: the whole pipeline runs over it, and a connection missing any part
//! is refused, saying why.

use aic_tests::harness::{Options, TestEnv};
use aic_tests::pki::Pki;
use aic_tests::private::PrivateRabbit;
use secrecy::SecretString;
use serde_json::json;
use std::path::PathBuf;

async fn node(pki: &Pki) -> PrivateRabbit {
    let file = |f: &str| PathBuf::from(pki.path(f));
    PrivateRabbit::start_tls(file("ca.pem"), file("server.crt"), file("server.key")).await
}

/// The node's TLS URL for `host`, with `query`.
fn url(rabbit: &PrivateRabbit, host: &str, query: &str) -> String {
    format!(
        "amqps://guest:guest@{host}:{}/%2f{query}",
        rabbit.tls_port()
    )
}

#[tokio::test]
async fn the_whole_pipeline_runs_over_amqps_with_a_private_ca_and_a_client_certificate() {
    let pki = Pki::new();
    let rabbit = node(&pki).await;
    let query = format!(
        "?cacertfile={}&certfile={}&keyfile={}",
        pki.path("ca.pem"),
        pki.path("client.crt"),
        pki.path("client.key")
    );
    let env = TestEnv::start_with(Options {
        amqp_url: Some(url(&rabbit, "localhost", &query)),
        ..Options::default()
    })
    .await;
    let lead = env.lead_automation().await;
    let done = env
        .run(
            &lead,
            json!({"LastName": "Lamarr", "Company": "Frequency Hopping"}),
        )
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    env.stop().await;
}

#[tokio::test]
async fn a_connection_missing_a_part_of_its_tls_is_refused_saying_why() {
    let pki = Pki::new();
    let rabbit = node(&pki).await;
    let (ca, cert, key) = (
        pki.path("ca.pem"),
        pki.path("client.crt"),
        pki.path("client.key"),
    );
    let client = format!("&certfile={cert}&keyfile={key}");
    // (The URLs hold the node's password: what failed is said by what was expected.)
    let refused = |url: String| async move {
        match aic_core::amqp::connect(&SecretString::from(url), "tls-test").await {
            Ok(_) => "connected".to_string(),
            Err(e) => e.to_string(),
        }
    };
    let goes = |url: String| async move {
        let conn = aic_core::amqp::connect(&SecretString::from(url), "tls-test")
            .await
            .unwrap_or_else(|e| panic!("with every part of TLS: {e}"));
        let _ = conn.close(200, "done".into()).await;
    };
    goes(url(
        &rabbit,
        "localhost",
        &format!("?cacertfile={ca}{client}"),
    ))
    .await;

    let cases = [
        // The system's CAs do not know the private one.
        (
            url(&rabbit, "localhost", &format!("?x=1{client}")),
            "UnknownIssuer",
        ),
        // The certificate is for localhost.
        (
            url(&rabbit, "127.0.0.1", &format!("?cacertfile={ca}{client}")),
            "certificate not valid for name \"127.0.0.1\"",
        ),
        (
            url(
                &rabbit,
                "localhost",
                &format!("?cacertfile={}{client}", pki.path("other-ca.pem")),
            ),
            "UnknownIssuer",
        ),
        (
            url(
                &rabbit,
                "localhost",
                &format!("?cacertfile={ca}&certfile={cert}"),
            ),
            "certfile and keyfile go together",
        ),
        (
            url(
                &rabbit,
                "localhost",
                &format!("?cacertfile={ca}&keyfile=/nonexistent.key&certfile={cert}"),
            ),
            "keyfile /nonexistent.key",
        ),
    ];
    for (url, why) in cases {
        let e = refused(url).await;
        println!("refused: {e}");
        assert!(e.contains(why), "expected {why:?} in {e}");
    }
    // No client certificate: the node ends the handshake. In TLS 1.3 the client's side of the
    // handshake is over before the node checks its certificate, so the refusal is read as the
    // node's alert, or — when the node has already reset the connection by then (seen in CI) —
    // as that reset.
    let e = refused(url(&rabbit, "localhost", &format!("?cacertfile={ca}"))).await;
    println!("without a client certificate: {e}");
    assert!(
        e.contains("CertificateRequired") || e.contains("Connection reset by peer"),
        "{e}"
    );
}
