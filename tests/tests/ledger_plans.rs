//! The ledger's batched statements run on connections that plan each of them once
//! (`Planning::KeyLookups`). That plan is made when a worker first prepares the statement —
//! often on a ledger still empty — and must stay right as the ledger grows to millions of
//! rows: rows found through the primary key, never a scan of the whole table. And an
//! execution's row stays on its page through its two updates (HOT updates: no new index
//! entries), which the table's fillfactor leaves room for.

use aic_proto::{
    AutomationId, ExecutionId, ExecutionResultV1, ExecutionStatus, TenantId, VersionId,
};
use aic_tests::harness::TestEnv;
use serde_json::json;
use uuid::Uuid;

/// Typed empty arrays for each statement's parameters: the plan, not the data, is checked.
fn arguments(kind: &str) -> &'static str {
    match kind {
        "begin" => "'{}'::uuid[], '{}'::uuid[], '{}'::uuid[], '{}'::text[], '{}'::text[]",
        "mark" => "'{}'::uuid[], '{}'::uuid[]",
        "finish" => {
            "'{}'::uuid[], '{}'::text[], '{}'::text[], '{}'::text[], '{}'::int4[], '{}'::uuid[]"
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

/// The heap page a ledger row is on.
async fn pages(client: &deadpool_postgres::Object, ids: &[Uuid]) -> Vec<i64> {
    let rows = client
        .query(
            "SELECT (e.ctid::text::point)[0]::int8 FROM executions e \
             JOIN unnest($1::uuid[]) WITH ORDINALITY AS u(id, n) ON e.id = u.id ORDER BY u.n",
            &[&ids],
        )
        .await
        .expect("pages");
    assert_eq!(rows.len(), ids.len(), "every execution has its row");
    rows.iter().map(|r| r.get(0)).collect()
}

#[tokio::test]
async fn an_execution_row_stays_on_its_page_through_the_mark_and_the_finish() {
    let env = TestEnv::start().await;
    let client = env.ledger_pool().get().await.expect("postgres");
    let [(_, begin), (_, mark), (_, finish)] = aic_worker::ledger::statements();
    let (begin, mark, finish) = (
        client.prepare(&begin).await.expect("begin prepares"),
        client.prepare(&mark).await.expect("mark prepares"),
        client.prepare(&finish).await.expect("finish prepares"),
    );
    // Pruning the versions the mark left behind needs no older snapshot in this database: an
    // autovacuum ANALYZE of the new rows, taking one mid-test, would be such a snapshot.
    client
        .batch_execute("ALTER TABLE executions SET (autovacuum_enabled = false)")
        .await
        .expect("autovacuum off for the test's ledger");
    let (tenant, automation, version) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    // Three batches of 40, each statement committed on its own, as the worker's batches run.
    for _ in 0..3 {
        let ids: Vec<Uuid> = (0..40).map(|_| Uuid::new_v4()).collect();
        // Parameters as the worker sends them: JSON text.
        let parameters: Vec<String> = ids
            .iter()
            .map(|_| {
                json!({"LastName": "Lovelace", "Company": "Analytical Engines Ltd"}).to_string()
            })
            .collect();
        let sources: Vec<Option<&str>> = vec![Some("flow:bench"); ids.len()];
        client
            .query(
                &begin,
                &[
                    &ids,
                    &vec![tenant; 40],
                    &vec![automation; 40],
                    &parameters,
                    &sources,
                ],
            )
            .await
            .expect("begin runs");
        let inserted = pages(&client, &ids).await;
        client
            .execute(&mark, &[&ids, &vec![version; 40]])
            .await
            .expect("mark runs");
        // Results as the worker publishes and stores them (JSON text), of a Salesforce
        // create's size.
        let results: Vec<String> = ids
            .iter()
            .map(|id| {
                let result = ExecutionResultV1 {
                    version: aic_proto::MESSAGE_VERSION,
                    execution_id: Some(ExecutionId(*id)),
                    tenant_id: Some(TenantId(tenant)),
                    automation_id: Some(AutomationId(automation)),
                    automation_version_id: Some(VersionId(version)),
                    status: ExecutionStatus::Succeeded,
                    output: json!({"id": "00Q5g00000AbCdEfGH", "success": true, "errors": []})
                        .as_object()
                        .cloned(),
                    error: None,
                    attempts: 1,
                    deduplicated: false,
                    finished_at: chrono::Utc::now(),
                };
                result.to_json().expect("JSON")
            })
            .collect();
        let size = results[0].len();
        assert!(
            size >= 350,
            "a result as large as a real one ({size} bytes): the room it needs is the point"
        );
        let updated = client
            .query(
                &finish,
                &[
                    &ids,
                    &vec!["succeeded"; 40],
                    &results,
                    &vec![None::<&str>; 40],
                    &vec![1i32; 40],
                    &vec![Some(version); 40],
                ],
            )
            .await
            .expect("finish runs");
        assert_eq!(updated.len(), ids.len(), "every execution finished");
        let finished = pages(&client, &ids).await;
        let moved = inserted
            .iter()
            .zip(&finished)
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(
            moved, 0,
            "rows that left their page on an update (not HOT: new index entries): \
             inserted on {inserted:?}, finished on {finished:?}"
        );
    }
    drop(client);
    env.stop().await;
}
