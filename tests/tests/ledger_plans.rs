//! The ledger's batched statements run on connections that plan each of them once
//! (`Planning::KeyLookups`). That plan is made when a worker first prepares the statement —
//! often on a ledger still empty — and must stay right as the ledger grows to millions of
//! rows: rows found through the primary key, never a scan of the whole table.

use aic_tests::harness::TestEnv;

/// Typed empty arrays for each statement's parameters: the plan, not the data, is checked.
fn arguments(kind: &str) -> &'static str {
    match kind {
        "begin" => "'{}'::uuid[], '{}'::uuid[], '{}'::uuid[], '{}'::jsonb[], '{}'::text[]",
        "mark" => "'{}'::uuid[], '{}'::uuid[]",
        "finish" => {
            "'{}'::uuid[], '{}'::text[], '{}'::jsonb[], '{}'::text[], '{}'::int4[], '{}'::uuid[]"
        }
        other => panic!("no arguments for the {other} statement"),
    }
}

#[tokio::test]
async fn each_batched_statement_has_one_plan_made_on_an_empty_ledger_that_finds_rows_by_key() {
    let env = TestEnv::start().await;
    let client = env.ledger_pool().get().await.expect("postgres");
    let empty: i64 = client
        .query_one("SELECT count(*) FROM executions", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(empty, 0, "the plans are made on an empty ledger");
    for (kind, sql) in aic_worker::ledger::statements() {
        client
            .batch_execute(&format!("PREPARE {kind} AS {sql}"))
            .await
            .unwrap_or_else(|e| panic!("the {kind} statement prepares: {e}"));
        let plan: Vec<String> = client
            .query(&format!("EXPLAIN EXECUTE {kind}({})", arguments(kind)), &[])
            .await
            .unwrap_or_else(|e| panic!("the {kind} statement explains: {e}"))
            .iter()
            .map(|r| r.get(0))
            .collect();
        let plan = plan.join("\n");
        // begin inserts (meeting a redelivery's row through the key); mark and finish update.
        let by_key = if kind == "begin" {
            "Conflict Arbiter Indexes: executions_pkey"
        } else {
            "Index Scan using executions_pkey on executions"
        };
        assert!(
            plan.contains(by_key),
            "{kind} finds its ledger rows through the primary key:\n{plan}"
        );
        // Nor does it read a whole table, of the ledger or of what begin resolves.
        for node in ["Seq Scan", "Hash Join", "Merge Join"] {
            assert!(!plan.contains(node), "{kind} has a {node}:\n{plan}");
        }
        let (generic, custom): (i64, i64) = client
            .query_one(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE name = $1",
                &[&kind],
            )
            .await
            .map(|r| (r.get(0), r.get(1)))
            .expect("the statement is prepared");
        assert_eq!(
            (generic, custom),
            (1, 0),
            "{kind} runs its one generic plan, not a plan per execution"
        );
    }
    drop(client);
    env.stop().await;
}
