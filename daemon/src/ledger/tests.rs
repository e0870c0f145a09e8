//! The ledger against a real store in a temporary directory.

use std::time::Duration;

use super::*;
use crate::config::{BudgetConfig, LimitsConfig, ModelBudget};
use crate::data::test_support::{open_store, reopen};
use crate::memory::ThreadId;
use crate::store::test_support::capture_warnings;
use crate::store::trees;
use crate::time::{Clock, Timestamp};

fn call(
    time: Timestamp,
    model: &str,
    tool: &str,
    cost: Option<f64>,
    latency_ms: u64,
) -> LedgerRecord {
    LedgerRecord {
        time,
        model: model.into(),
        provider: "openai".into(),
        tool: tool.into(),
        thread: Some(ThreadId::new()),
        session_id: Some("s1".into()),
        client: Some("claude-code".into()),
        project: Some("/home/u/src/zen".into()),
        input_tokens: 1000,
        output_tokens: 200,
        cached_tokens: 10,
        cache_write_tokens: 0,
        reasoning_tokens: 5,
        cache_saved_usd: 0.0,
        cost_usd: cost,
        latency_ms,
        outcome: Outcome::Ok,
    }
}

fn budgets(daily: Option<f64>, monthly: Option<f64>) -> LimitsConfig {
    let mut limits = LimitsConfig::default();
    limits.budgets.daily_usd = daily;
    limits.budgets.monthly_usd = monthly;
    limits
}

#[tokio::test]
async fn totals_by_period_model_tool_and_client() {
    let (_dir, store, clock) = open_store(LimitsConfig::default());
    let ledger = store.ledger();
    let now = clock.now();
    let yesterday = Timestamp::from_millis(now.as_millis() - 86_400_000);
    let last_month = Timestamp::parse_rfc3339("2025-02-27T10:00:00Z").unwrap();

    ledger
        .record(call(now, "gpt-5", "chat", Some(0.5), 900))
        .await
        .unwrap();
    ledger
        .record(call(now, "gpt-5", "codereview", Some(0.25), 1500))
        .await
        .unwrap();
    let mut failed = call(now, "o3", "chat", None, 30_000);
    failed.outcome = Outcome::Error {
        kind: "timeout".into(),
    };
    failed.client = None;
    ledger.record(failed).await.unwrap();
    ledger
        .record(call(yesterday, "gpt-5", "chat", Some(1.0), 800))
        .await
        .unwrap();
    ledger
        .record(call(last_month, "gpt-5", "chat", Some(2.0), 800))
        .await
        .unwrap();

    let totals = ledger.totals(now).unwrap();
    assert_eq!(totals.today.period, "2025-03-10");
    assert_eq!(totals.this_month.period, "2025-03");
    assert_eq!(totals.today.total.calls, 3);
    assert_eq!(totals.today.total.errors, 1);
    assert_eq!(totals.today.total.unpriced_calls, 1);
    assert!((totals.today.total.cost_usd - 0.75).abs() < 1e-9);
    assert_eq!(totals.today.total.input_tokens, 3000);
    assert_eq!(totals.today.total.output_tokens, 600);
    assert_eq!(totals.today.total.cached_tokens, 30);
    assert_eq!(totals.today.total.reasoning_tokens, 15);
    assert_eq!(totals.this_month.total.calls, 4);
    assert!((totals.this_month.total.cost_usd - 1.75).abs() < 1e-9);
    assert_eq!(totals.all_time.total.calls, 5);
    assert!((totals.all_time.total.cost_usd - 3.75).abs() < 1e-9);

    assert_eq!(totals.today.by_model["gpt-5"].calls, 2);
    assert_eq!(totals.today.by_model["o3"].errors, 1);
    assert_eq!(totals.today.by_tool["chat"].calls, 2);
    assert_eq!(totals.today.by_tool["codereview"].calls, 1);
    assert_eq!(totals.today.by_client["claude-code"].calls, 2);
    assert_eq!(totals.today.by_client[UNKNOWN_CLIENT].calls, 1);
    // Four gpt-5 calls this month at 800–1500 ms: the median is in (500, 1000].
    let p50 = totals.this_month.by_model["gpt-5"].p50_latency_ms.unwrap();
    assert!((500..=1000).contains(&p50), "{p50}");
    assert_eq!(totals.today.by_model["o3"].p50_latency_ms, Some(30_000));

    let text = totals.render_text();
    assert!(text.contains("today"), "{text}");
    assert!(text.contains("$0.75 +1 unpriced"), "{text}");
    assert!(text.contains("this month by model"), "{text}");
    assert!(text.contains("  o3 "), "{text}");
    assert!(text.contains("unknown"), "{text}");
    let json = serde_json::to_value(&totals).unwrap();
    assert_eq!(json["all_time"]["total"]["calls"], 5);
    assert_eq!(json["today"]["by_model"]["o3"]["cost_usd"], 0.0);
    assert_eq!(json["today"]["by_model"]["o3"]["unpriced_calls"], 1);

    let records = ledger.records_since(yesterday, 10).unwrap();
    assert_eq!(records.len(), 4);
    assert_eq!(records[0].time, yesterday);
    assert_eq!(records[3].cost_usd, None);
}

#[tokio::test]
async fn totals_survive_a_reopen() {
    let (dir, store, clock) = open_store(LimitsConfig::default());
    let now = clock.now();
    store
        .ledger()
        .record_batch(&[
            call(now, "gpt-5", "chat", Some(0.5), 900),
            call(now, "o3", "debug", Some(0.1), 400),
        ])
        .await
        .unwrap();
    let before = store.ledger().totals(now).unwrap();
    drop(store);
    let (store, _clock) = reopen(&dir, LimitsConfig::default());
    assert_eq!(store.ledger().totals(now).unwrap(), before);
    store
        .ledger()
        .record(call(now, "gpt-5", "chat", Some(0.5), 900))
        .await
        .unwrap();
    assert_eq!(store.ledger().totals(now).unwrap().all_time.total.calls, 3);
    // Same millisecond, after a reopen: the record got a key of its own
    // instead of overwriting one of the first two.
    assert_eq!(store.ledger().records_since(now, 10).unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_records_all_count() {
    let (_dir, store, clock) = open_store(LimitsConfig::default());
    let now = clock.now();
    let mut handles = Vec::new();
    for task in 0..8 {
        let ledger = store.ledger().clone();
        handles.push(tokio::spawn(async move {
            for _ in 0..10 {
                ledger
                    .record(call(now, &format!("m{task}"), "chat", Some(0.01), 100))
                    .await
                    .unwrap();
            }
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
    let totals = store.ledger().totals(now).unwrap();
    assert_eq!(totals.all_time.total.calls, 80);
    assert!((totals.all_time.total.cost_usd - 0.8).abs() < 1e-9);
    assert_eq!(totals.today.by_model.len(), 8);
    assert_eq!(
        store
            .ledger()
            .records_since(Timestamp::EPOCH, 1000)
            .unwrap()
            .len(),
        80
    );
}

#[tokio::test]
async fn budgets_warn_then_refuse_naming_cap_spend_and_reset() {
    let (_dir, store, clock) = open_store(budgets(Some(1.0), Some(10.0)));
    let ledger = store.ledger();
    let now = clock.now();
    assert_eq!(ledger.check_budget("gpt-5", now).unwrap(), None);

    ledger
        .record(call(now, "gpt-5", "chat", Some(0.5), 100))
        .await
        .unwrap();
    assert_eq!(ledger.check_budget("gpt-5", now).unwrap(), None);

    ledger
        .record(call(now, "gpt-5", "chat", Some(0.35), 100))
        .await
        .unwrap();
    let warning = ledger.check_budget("gpt-5", now).unwrap().unwrap();
    assert_eq!(
        warning,
        "Budget: $0.85 of the daily budget of $1.00 spent (85%); it resets at 2025-03-11 00:00 UTC."
    );

    // An estimate that would pass the cap is refused before spending it.
    let err = ledger.check_budget_for("gpt-5", 0.2, now).unwrap_err();
    assert!(matches!(err, BudgetError::Exceeded { .. }), "{err:?}");

    ledger
        .record(call(now, "gpt-5", "chat", Some(0.2), 100))
        .await
        .unwrap();
    let err = ledger.check_budget("o3", now).unwrap_err().to_string();
    assert_eq!(
        err,
        "refused: this call would pass the daily budget of $1.00 ($1.05 spent today); it resets at 2025-03-11 00:00 UTC (in 12h 0m). To allow it now, raise budgets.daily_usd in limits.yaml"
    );

    // Tomorrow the daily cap is fresh; the monthly one still counts.
    clock.advance(Duration::from_secs(13 * 3600));
    assert_eq!(ledger.check_budget("gpt-5", clock.now()).unwrap(), None);
    let totals = ledger.totals(clock.now()).unwrap();
    assert_eq!(totals.budgets.len(), 2);
    assert_eq!(totals.budgets[1].label(), "monthly");
    assert!((totals.budgets[1].spent_usd - 1.05).abs() < 1e-9);
    assert_eq!(totals.budgets[1].resets_at.day_key(), "2025-04-01");
    assert!(totals.render_text().contains("monthly"));
}

#[tokio::test]
async fn per_model_budgets_only_bind_their_model() {
    let mut limits = LimitsConfig::default();
    limits.budgets.per_model.insert(
        "gpt-5".into(),
        ModelBudget {
            daily_usd: None,
            monthly_usd: Some(2.0),
        },
    );
    let (_dir, store, clock) = open_store(limits);
    let ledger = store.ledger();
    let now = clock.now();
    ledger
        .record(call(now, "gpt-5", "chat", Some(2.0), 100))
        .await
        .unwrap();
    let err = ledger.check_budget("gpt-5", now).unwrap_err().to_string();
    assert!(
        err.contains("the monthly budget for gpt-5 of $2.00 ($2.00 spent on gpt-5 this month)"),
        "{err}"
    );
    assert!(err.contains("resets at 2025-04-01 00:00 UTC"), "{err}");
    assert!(err.contains("budgets.per_model.gpt-5.monthly_usd"), "{err}");
    assert_eq!(ledger.check_budget("o3", now).unwrap(), None);

    // Budgets can be replaced after limits.yaml is reloaded.
    ledger.set_budgets(BudgetConfig::default());
    assert_eq!(ledger.check_budget("gpt-5", now).unwrap(), None);
}

#[tokio::test]
async fn corrupt_records_and_totals_are_skipped_with_a_warning() {
    let (dir, store, clock) = open_store(LimitsConfig::default());
    let now = clock.now();
    let ledger = store.ledger();
    ledger
        .record(call(now, "gpt-5", "chat", Some(0.5), 100))
        .await
        .unwrap();
    drop(store);
    let (store, _clock) = reopen(&dir, LimitsConfig::default());
    let ledger = store.ledger();
    let raw = store.store();
    raw.raw_insert(trees::LEDGER_TOTALS, b"all/model/o3", b"garbage")
        .await;
    raw.raw_insert(trees::LEDGER_TOTALS, b"all/nonsense", b"{}")
        .await;
    raw.raw_insert(
        trees::LEDGER_TOTALS,
        format!("d{}/tool/chat", now.day_key()).as_bytes(),
        b"[1,",
    )
    .await;
    raw.raw_insert(trees::LEDGER, &[0_u8; 16], b"nope").await;

    let (totals, logs) = capture_warnings(|| ledger.totals(now).unwrap());
    assert_eq!(totals.all_time.total.calls, 1);
    assert!(!totals.all_time.by_model.contains_key("o3"));
    assert!(!totals.today.by_tool.contains_key("chat"));
    assert!(
        logs.contains("skipping a corrupt entry in the store"),
        "{logs}"
    );
    assert!(logs.contains("all/model/o3"), "{logs}");
    assert!(logs.contains("all/nonsense"), "{logs}");

    let (records, logs) = capture_warnings(|| ledger.records_since(Timestamp::EPOCH, 10).unwrap());
    assert_eq!(records.len(), 1);
    assert!(logs.contains("ledger"), "{logs}");

    // A corrupt aggregate restarts from zero on the next record, with a
    // warning.
    drop(store);
    let (store, _clock) = reopen(&dir, LimitsConfig::default());
    let ledger = store.ledger();
    ledger
        .record(call(now, "gpt-5", "chat", Some(0.5), 100))
        .await
        .unwrap();
    let totals = ledger.totals(now).unwrap();
    assert_eq!(totals.today.by_tool["chat"].calls, 1);
    assert_eq!(totals.all_time.total.calls, 2);
}

#[tokio::test]
async fn projects_percentiles_and_series_by_day_week_and_month() {
    let (_dir, store, clock) = open_store(LimitsConfig::default());
    let ledger = store.ledger();
    // 2025-03-10, a Monday, at noon.
    let now = clock.now();
    let days_back = |d: u64| Timestamp::from_millis(now.as_millis() - d * 86_400_000);
    let mut today: Vec<LedgerRecord> = (0..9)
        .map(|_| call(now, "gpt-5", "chat", Some(0.1), 200))
        .collect();
    let mut slow = call(now, "gpt-5", "chat", Some(0.1), 100_000);
    slow.project = None;
    today.push(slow);
    ledger.record_batch(&today).await.unwrap();
    ledger
        .record(call(days_back(1), "o3", "chat", Some(1.0), 800))
        .await
        .unwrap();
    ledger
        .record(call(days_back(7), "o3", "thinkdeep", Some(2.0), 800))
        .await
        .unwrap();
    let february = Timestamp::parse_rfc3339("2025-02-27T10:00:00Z").unwrap();
    ledger
        .record(call(february, "gpt-5", "chat", Some(4.0), 800))
        .await
        .unwrap();

    let totals = ledger.totals(now).unwrap();
    let gpt5 = &totals.today.by_model["gpt-5"];
    assert_eq!(
        (
            gpt5.p50_latency_ms,
            gpt5.p90_latency_ms,
            gpt5.p99_latency_ms
        ),
        (Some(183), Some(250), Some(120_000))
    );
    // Calls without a working directory count in the total only.
    assert_eq!(totals.today.by_project.len(), 1);
    assert_eq!(totals.today.by_project["/home/u/src/zen"].calls, 9);
    assert_eq!(totals.today.total.calls, 10);

    let cost = |p: &PeriodTotals| (p.period.clone(), (p.total.cost_usd * 100.0).round() / 100.0);
    let days = ledger.series(SeriesUnit::Day, 8, now).unwrap();
    assert_eq!(days.len(), 8);
    assert_eq!(cost(&days[0]), ("2025-03-03".into(), 2.0));
    assert_eq!(cost(&days[6]), ("2025-03-09".into(), 1.0));
    assert_eq!(cost(&days[7]), ("2025-03-10".into(), 1.0));
    assert_eq!(
        days[7],
        PeriodTotals {
            period: "2025-03-10".into(),
            ..totals.today.clone()
        }
    );
    assert_eq!(days[6].by_tool["chat"].calls, 1);
    assert_eq!(days[3].total.calls, 0);

    // Weeks run Monday to Sunday: the 3rd and the 9th are one week.
    let weeks = ledger.series(SeriesUnit::Week, 3, now).unwrap();
    let weeks: Vec<_> = weeks.iter().map(cost).collect();
    assert_eq!(
        weeks,
        [
            ("2025-02-24".into(), 4.0),
            ("2025-03-03".into(), 3.0),
            ("2025-03-10".into(), 1.0)
        ]
    );
    let months = ledger.series(SeriesUnit::Month, 2, now).unwrap();
    assert_eq!(
        months[1],
        PeriodTotals {
            period: "2025-03".into(),
            ..totals.this_month.clone()
        }
    );
    let months: Vec<_> = months.iter().map(cost).collect();
    assert_eq!(months, [("2025-02".into(), 4.0), ("2025-03".into(), 4.0)]);
    let across_new_year = ledger
        .series(SeriesUnit::Month, 4, now)
        .unwrap()
        .iter()
        .map(|p| p.period.clone())
        .collect::<Vec<_>>();
    assert_eq!(
        across_new_year,
        ["2024-12", "2025-01", "2025-02", "2025-03"]
    );
}
