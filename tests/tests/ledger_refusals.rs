//! Values the execution ledger refuses to record — a rule of the database that one request
//! breaks, at its first record, at the note made just before its vendor call, or at its final
//! state — end that execution plainly (answered, dead-lettered with the reason), never hold it
//! for ever, and never stop the requests around it.

use aic_proto::topology::{DEAD_LETTER_DETAIL_HEADER, DEAD_LETTER_REASON_HEADER};
use aic_tests::harness::{TestEnv, assert_failed_with, dead_letter_header};
use serde_json::{Value, json};

/// Good requests sent around the poisoned one.
const GOOD: usize = 10;

/// Adds a rule to the ledger's table that only the request with `LastName` `name` breaks, at
/// the step `when` (an SQL condition on the row) — as an operator's constraint might —, sends
/// that request among [`GOOD`] good ones, and checks that every good one succeeded and the bad
/// one was dead-lettered as `ledger_refused`. Returns its result, if one came, and the dead
/// letter's detail.
async fn poisoned(
    env: &TestEnv,
    automation: &str,
    (constraint, name, when): (&str, &str, &str),
) -> (Option<Value>, String) {
    env.pool
        .get()
        .await
        .expect("client")
        .batch_execute(&format!(
            "ALTER TABLE executions ADD CONSTRAINT {constraint} \
             CHECK (NOT ({when}) OR parameters->>'LastName' IS DISTINCT FROM '{name}') NOT VALID"
        ))
        .await
        .expect("constraint");
    let (result, succeeded) = env
        .one_bad_among_good(
            automation,
            json!({"LastName": name, "Company": "Acme"}),
            GOOD,
        )
        .await;
    assert!(succeeded >= GOOD, "{succeeded} of {GOOD} succeeded");
    let dead = env.next_dead_letter().await;
    assert_eq!(
        dead_letter_header(&dead, DEAD_LETTER_REASON_HEADER),
        "ledger_refused"
    );
    (result, dead_letter_header(&dead, DEAD_LETTER_DETAIL_HEADER))
}

#[tokio::test]
async fn a_request_the_ledger_refuses_is_dead_lettered_and_answered_not_retried_forever() {
    // A rule of the database that one request breaks (here a constraint an operator added):
    // the ledger refuses to record it on every try, so retrying it in the worker, as an outage
    // is retried, would hold it there for good and answer nobody.
    let env = TestEnv::start().await;
    let automation = env.lead_automation().await;
    let (failed, detail) = poisoned(&env, &automation, ("no_poison", "Poison", "true")).await;
    assert_failed_with(failed, "internal", &["no_poison", "SQLSTATE 23514"]);
    assert!(detail.contains("no_poison"), "{detail}");
    assert_eq!(
        env.sandbox.requests_to("/sobjects/").len(),
        GOOD,
        "only the good requests reached the vendor"
    );
    env.stop().await;
}

#[tokio::test]
async fn a_vendor_call_mark_the_ledger_refuses_fails_the_execution_without_calling() {
    // The row is recorded, but the note that the call is about to leave is refused: the call
    // must not go out unrecorded, and the request must not come back for ever.
    let env = TestEnv::start().await;
    let automation = env.lead_automation().await;
    let rule = (
        "no_poison_mark",
        "PoisonMark",
        "vendor_call_started_at IS NOT NULL",
    );
    let (failed, _) = poisoned(&env, &automation, rule).await;
    assert_failed_with(failed, "internal", &["no_poison_mark", "SQLSTATE 23514"]);
    assert_eq!(
        env.sandbox.requests_to("/sobjects/").len(),
        GOOD,
        "the refused request never reached the vendor"
    );
    env.stop().await;
}

#[tokio::test]
async fn a_result_the_ledger_refuses_is_published_as_it_stands_and_dead_lettered_once() {
    // The vendor was called and answered; only the final state cannot be written. Retrying it
    // in place would hold the execution for ever and answer nobody.
    let env = TestEnv::start().await;
    let automation = env.lead_automation().await;
    let rule = (
        "no_poison_result",
        "PoisonResult",
        "status NOT IN ('queued', 'running')",
    );
    let (result, detail) = poisoned(&env, &automation, rule).await;
    let result = result.expect("a result for the request whose result was refused");
    assert_eq!(result["status"], "succeeded", "{result}");
    assert!(
        result["output"]["id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "the vendor's record id is in the result: {result}"
    );
    assert!(
        detail.contains("no_poison_result") && detail.contains("published as it stands"),
        "{detail}"
    );
    assert_eq!(
        env.sandbox.requests_to("/sobjects/").len(),
        GOOD + 1,
        "the vendor was called once for it, not again"
    );
    env.stop().await;
}
