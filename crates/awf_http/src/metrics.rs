//! Request counts and latency histograms per route, method and status, and `GET /metrics`:
//! those plus the extension's own counters (`awf.metrics`), in the Prometheus text format.
//!
//! Labels are bounded by construction: the route is the router's matched pattern (or
//! `unmatched`), the method one of the standard ones (or `other`), the status a number below
//! 1000; a hostile client cannot grow the table by inventing paths.

use crate::db::AppState;
use crate::error::AppError;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Upper bounds (seconds) of the latency histogram's buckets; `+Inf` is implied.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// One label set's count, latency sum and cumulative-on-render bucket counts.
#[derive(Default, Clone)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

/// The labels of one series: route pattern, method, status.
type Key = (String, &'static str, u16);

/// The server's request metrics, shared by every connection.
#[derive(Clone, Default)]
pub struct Metrics {
    series: Arc<Mutex<BTreeMap<Key, Series>>>,
}

impl Metrics {
    /// Counts one finished request.
    pub fn observe(&self, route: String, method: &Method, status: u16, seconds: f64) {
        let mut map = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let s = map
            .entry((route, method_label(method), status))
            .or_default();
        s.count += 1;
        s.sum += seconds;
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            s.buckets[i] += 1;
        }
    }

    /// The request series in the Prometheus text format.
    pub fn render(&self) -> String {
        let map = self
            .series
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut out = String::new();
        out.push_str(
            "# HELP awf_http_requests_total HTTP requests answered, by route, method and status.\n",
        );
        out.push_str("# TYPE awf_http_requests_total counter\n");
        for ((route, method, status), s) in &map {
            let _ = writeln!(
                out,
                "awf_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {}",
                escape(route),
                s.count
            );
        }
        out.push_str("# HELP awf_http_request_duration_seconds Time to the response's headers, by route, method and status.\n");
        out.push_str("# TYPE awf_http_request_duration_seconds histogram\n");
        for ((route, method, status), s) in &map {
            let labels = format!(
                "route=\"{}\",method=\"{method}\",status=\"{status}\"",
                escape(route)
            );
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(s.buckets) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "awf_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "awf_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "awf_http_request_duration_seconds_sum{{{labels}}} {}",
                s.sum
            );
            let _ = writeln!(
                out,
                "awf_http_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
        out
    }
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// A label value in the text format: backslash, quote and newline escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A counter name of the extension (`awf.sync.turns_persisted`) as a Prometheus metric name
/// (`awf_sync_turns_persisted_total`).
fn metric_name(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s.push_str("_total");
    s
}

/// Middleware: times every request and counts it under its matched route.
pub async fn track(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let res = next.run(req).await;
    metrics.observe(
        route,
        &method,
        res.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    res
}

/// `GET /metrics`: request series, connection-pool gauges and the extension's counters.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain; version=0.0.4")))]
pub async fn metrics(State(state): State<AppState>) -> Result<Response, AppError> {
    let mut out = state.metrics().render();
    let pool = state.pool_status();
    out.push_str("# HELP awf_http_pool_connections Pooled database connections, open and idle.\n# TYPE awf_http_pool_connections gauge\n");
    let _ = writeln!(
        out,
        "awf_http_pool_connections{{state=\"open\"}} {}\nawf_http_pool_connections{{state=\"idle\"}} {}",
        pool.size, pool.available
    );
    out.push_str("# HELP awf_http_sync_waiters Sync long polls and event streams waiting for a save's head to move.\n# TYPE awf_http_sync_waiters gauge\n");
    let _ = writeln!(out, "awf_http_sync_waiters {}", state.heads().waiters());
    let conn = state.conn().await?;
    for row in conn
        .query("SELECT name, value FROM awf.metrics ORDER BY name", &[])
        .await?
    {
        let name: String = row.get(0);
        let value: i64 = row.get(1);
        let metric = metric_name(&name);
        let _ = writeln!(
            out,
            "# HELP {metric} The extension's counter {name}.\n# TYPE {metric} counter\n{metric} {value}"
        );
    }
    Ok(([(CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_end_at_the_count() {
        let m = Metrics::default();
        for s in [0.0005, 0.003, 0.003, 20.0] {
            m.observe("/x".into(), &Method::GET, 200, s);
        }
        let text = m.render();
        assert!(
            text.contains("awf_http_requests_total{route=\"/x\",method=\"GET\",status=\"200\"} 4")
        );
        assert!(text.contains("le=\"0.001\"} 1"), "{text}");
        assert!(text.contains("le=\"0.005\"} 3"), "{text}");
        assert!(text.contains("le=\"10\"} 3"), "{text}");
        assert!(text.contains("le=\"+Inf\"} 4"), "{text}");
    }

    #[test]
    fn names_and_labels_are_sanitized() {
        assert_eq!(
            metric_name("awf.sync.turns_persisted"),
            "awf_sync_turns_persisted_total"
        );
        assert_eq!(metric_name("9 lives"), "_9_lives_total");
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
