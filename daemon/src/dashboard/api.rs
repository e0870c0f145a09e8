//! The dashboard's JSON API, under `/dashboard/api/` (the page reads only this;
//! scripts may too, with `Authorization: Bearer $(zend http-token)`). All GET,
//! all read-only; `GET /dashboard/api` lists the endpoints.
//!
//! - `totals`: the ledger's totals exactly as `zend status --json` shows them
//!   under `ledger` (today, this month, all time; by model, tool, client,
//!   project; budgets), without the rendered `summary`.
//! - `series?unit=day|week|month&steps=N`: the last N UTC days (default 30),
//!   Monday-to-Sunday weeks (12) or months (12), oldest first, each shaped as a
//!   period of `totals`.
//! - `budgets`: each cap with what is spent, when it resets and, at the rate
//!   spent so far this period, when it would run out (`null`: not before it resets).
//! - `live`: sessions and tool calls in flight now, and the all-time call count
//!   (it changes when a call is recorded: the page re-reads the rest then).
//! - `threads?text=&tool=&model=&project=&limit=`: thread summaries, newest first.
//! - `threads/{id}`: one thread with every turn.

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::Shared;
use crate::ledger::{BudgetPeriod, BudgetStatus, SeriesUnit, Totals};
use crate::memory::{ThreadError, ThreadFilter, ThreadId};
use crate::time::{Clock, SystemClock, Timestamp};

pub(super) fn router() -> axum::Router<Shared> {
    let path = |rest: &str| format!("{}/api{rest}", super::PATH);
    axum::Router::new()
        .route(&path(""), get(index))
        .route(&path("/"), get(index))
        .route(&path("/totals"), get(totals))
        .route(&path("/series"), get(series))
        .route(&path("/budgets"), get(budgets))
        .route(&path("/live"), get(live))
        .route(&path("/threads"), get(threads))
        .route(&path("/threads/{id}"), get(thread))
}

pub(super) fn error(status: StatusCode, message: &str) -> Response {
    respond(status, &json!({ "error": message }))
}

fn respond(status: StatusCode, value: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn ok(value: &impl serde::Serialize) -> Response {
    match serde_json::to_value(value) {
        Ok(value) => respond(StatusCode::OK, &value),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

fn failed(e: impl std::fmt::Display) -> Response {
    error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())
}

fn param(request: &Request, name: &str) -> Option<String> {
    super::query_param(request.uri().query(), name).filter(|v| !v.trim().is_empty())
}

async fn index() -> Response {
    respond(
        StatusCode::OK,
        &json!({
            "endpoints": {
                "totals": "the ledger totals `zend status --json` shows under `ledger`",
                "series?unit=day|week|month&steps=N": "the last N days (30), weeks (12) or months (12), oldest first",
                "budgets": "every cap: spent, resets_at, runs_out_at at the current rate",
                "live": "sessions and calls in flight now; calls_all_time",
                "threads?text=&tool=&model=&project=&limit=": "thread summaries, newest first",
                "threads/{id}": "one thread with its turns",
            },
            "auth": "a session cookie from `zend dashboard`'s link, or Authorization: Bearer <zend http-token>",
        }),
    )
}

async fn totals(State(shared): State<Shared>) -> Response {
    match shared.daemon.store.ledger().totals(SystemClock.now()) {
        Ok(totals) => ok(&totals),
        Err(e) => failed(e),
    }
}

async fn series(State(shared): State<Shared>, request: Request) -> Response {
    let unit = match param(&request, "unit").as_deref() {
        None | Some("day") => SeriesUnit::Day,
        Some("week") => SeriesUnit::Week,
        Some("month") => SeriesUnit::Month,
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("unit must be day, week or month, not {other:?}"),
            );
        }
    };
    let steps = match param(&request, "steps").map(|s| s.parse::<usize>()) {
        None => match unit {
            SeriesUnit::Day => 30,
            SeriesUnit::Week | SeriesUnit::Month => 12,
        },
        Some(Ok(n)) if (1..=SeriesUnit::MAX_STEPS).contains(&n) => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("steps must be a number from 1 to {}", SeriesUnit::MAX_STEPS),
            );
        }
    };
    match shared
        .daemon
        .store
        .ledger()
        .series(unit, steps, SystemClock.now())
    {
        Ok(periods) => ok(&json!({ "unit": unit, "periods": periods })),
        Err(e) => failed(e),
    }
}

/// When `status`'s cap runs out if spending goes on at this period's rate so
/// far; `None` when not before it resets (or nothing is spent yet).
pub(crate) fn runs_out_at(status: &BudgetStatus, now: Timestamp) -> Option<Timestamp> {
    if status.spent_usd >= status.cap_usd {
        return Some(now);
    }
    if status.spent_usd <= 0.0 {
        return None;
    }
    let (year, month, _) = now.date();
    let start = match status.period {
        BudgetPeriod::Daily => Timestamp::from_date(year, month, now.date().2),
        BudgetPeriod::Monthly => Timestamp::from_date(year, month, 1),
    };
    let elapsed_ms = now.since(start).as_millis().max(60_000) as f64;
    let rate = status.spent_usd / elapsed_ms;
    let left_ms = (status.cap_usd - status.spent_usd) / rate;
    let at = Timestamp::from_millis(now.as_millis().saturating_add(left_ms.min(1e15) as u64));
    (at < status.resets_at).then_some(at)
}

async fn budgets(State(shared): State<Shared>) -> Response {
    let now = SystemClock.now();
    let ledger = shared.daemon.store.ledger();
    let totals: Totals = match ledger.totals(now) {
        Ok(totals) => totals,
        Err(e) => return failed(e),
    };
    let budgets: Vec<Value> = totals
        .budgets
        .iter()
        .map(|status| {
            json!({
                "label": status.label(),
                "model": status.model,
                "period": status.period,
                "cap_usd": status.cap_usd,
                "spent_usd": status.spent_usd,
                "fraction": status.fraction(),
                "resets_at": status.resets_at,
                "runs_out_at": runs_out_at(status, now),
            })
        })
        .collect();
    ok(&json!({
        "as_of": now,
        "warn_at": ledger.budgets().warn_at,
        "file": shared.daemon.locations.config_dir.join("limits.yaml"),
        "budgets": budgets,
    }))
}

async fn live(State(shared): State<Shared>) -> Response {
    let daemon = &shared.daemon;
    let sessions: Vec<Value> = daemon
        .sessions
        .snapshot()
        .iter()
        .map(|s| {
            let (client, version) = s.client().unwrap_or_default();
            json!({
                "id": s.id,
                "client": client,
                "client_version": version,
                "transport": match s.meta.transport {
                    crate::sessions::SessionTransport::Shim => "shim",
                    crate::sessions::SessionTransport::Http => "http",
                },
                "project": s.project(),
                "age_ms": s.opened.elapsed().as_millis() as u64,
                "in_flight_calls": s.in_flight(),
            })
        })
        .collect();
    let in_flight: u64 = sessions
        .iter()
        .filter_map(|s| s["in_flight_calls"].as_u64())
        .sum();
    let now = SystemClock.now();
    let calls = match daemon.store.ledger().totals(now) {
        Ok(totals) => totals.all_time.total.calls,
        Err(e) => return failed(e),
    };
    ok(&json!({
        "as_of": now,
        "daemon_version": zen_proto::VERSION,
        "uptime_ms": daemon.started.elapsed().as_millis() as u64,
        "in_flight_calls": in_flight,
        "sessions": sessions,
        "calls_all_time": calls,
    }))
}

async fn threads(State(shared): State<Shared>, request: Request) -> Response {
    let limit = match param(&request, "limit").map(|s| s.parse::<usize>()) {
        None => 50,
        Some(Ok(n)) => n.clamp(1, 1000),
        Some(Err(_)) => return error(StatusCode::BAD_REQUEST, "limit must be a number"),
    };
    let filter = ThreadFilter {
        cwd: param(&request, "project"),
        tool: param(&request, "tool"),
        model: param(&request, "model"),
        text: param(&request, "text"),
        limit,
    };
    match shared.daemon.store.threads().list(&filter) {
        Ok(found) => ok(&found),
        Err(e) => failed(e),
    }
}

async fn thread(State(shared): State<Shared>, Path(id): Path<String>) -> Response {
    let id: ThreadId = match id.trim().parse() {
        Ok(id) => id,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("{e}")),
    };
    match shared.daemon.store.threads().get(&id) {
        Ok(thread) => ok(&thread),
        Err(ThreadError::Store(e)) => failed(e),
        Err(other) => error(StatusCode::NOT_FOUND, &other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(period: BudgetPeriod, cap: f64, spent: f64, now: Timestamp) -> BudgetStatus {
        BudgetStatus {
            model: None,
            period,
            cap_usd: cap,
            spent_usd: spent,
            resets_at: match period {
                BudgetPeriod::Daily => now.next_day(),
                BudgetPeriod::Monthly => now.next_month(),
            },
        }
    }

    #[test]
    fn a_budget_runs_out_at_the_rate_spent_so_far() {
        let noon = Timestamp::parse_rfc3339("2025-03-10T12:00:00Z").unwrap();
        // $3 of $4 in 12 hours: $0.25 an hour, the last dollar lasts 4 more hours.
        let daily = status(BudgetPeriod::Daily, 4.0, 3.0, noon);
        assert_eq!(
            runs_out_at(&daily, noon),
            Timestamp::parse_rfc3339("2025-03-10T16:00:00Z")
        );
        // $1 of $4 by noon: it would last until tomorrow, so not before the reset.
        assert_eq!(
            runs_out_at(&status(BudgetPeriod::Daily, 4.0, 1.0, noon), noon),
            None
        );
        assert_eq!(
            runs_out_at(&status(BudgetPeriod::Daily, 4.0, 0.0, noon), noon),
            None
        );
        assert_eq!(
            runs_out_at(&status(BudgetPeriod::Daily, 4.0, 4.5, noon), noon),
            Some(noon)
        );
        // 9.5 days into March, $19 of $40: $2 a day, $21 left lasts 10.5 more days.
        let monthly = status(BudgetPeriod::Monthly, 40.0, 19.0, noon);
        assert_eq!(
            runs_out_at(&monthly, noon),
            Timestamp::parse_rfc3339("2025-03-21T00:00:00Z")
        );
    }
}
