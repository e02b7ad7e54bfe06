//! A bot process that serves botdb's metrics for Prometheus and a health probe beside its own work.
//!
//! ```sh
//! cargo run --example metrics_and_health            # a database in a temporary folder
//! curl -s 127.0.0.1:9187/metrics | grep botdb_       # Prometheus text format
//! curl -s 127.0.0.1:9188/health                      # JSON; HTTP 200 ok, 503 degraded or down
//! ```

#![recursion_limit = "256"]

use std::io::{Read, Write};

use botdb::{Db, HealthStatus, Settings};

/// Answers every connection on `listener` with the handle's health as JSON (one request per connection).
fn serve_health(listener: std::net::TcpListener, db: Db, rt: tokio::runtime::Handle) {
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let mut request = [0u8; 1024];
        let _ = stream.read(&mut request);
        let health = rt.block_on(db.health());
        let status = if health.status == HealthStatus::Ok { "200 OK" } else { "503 Service Unavailable" };
        let body = serde_json::to_string(&health).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        let _ = write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Every botdb metric (queue depth, batch sizes, cache hits, pool use, …) with its description.
    metrics_exporter_prometheus::PrometheusBuilder::new().with_http_listener(([127, 0, 0, 1], 9187)).install()?;
    botdb::describe_metrics();

    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}/bot.sqlite?mode=rwc", dir.path().display());
    let db = Db::open(Settings::for_url(url)).await?;

    let listener = std::net::TcpListener::bind(("127.0.0.1", 9188))?;
    let (probe, rt) = (db.clone(), tokio::runtime::Handle::current());
    std::thread::spawn(move || serve_health(listener, probe, rt));
    eprintln!("metrics on http://127.0.0.1:9187/metrics, health on http://127.0.0.1:9188/health; Ctrl-C stops");

    // The bot's own work would run here; this example only waits.
    tokio::signal::ctrl_c().await?;
    db.shutdown().await;
    Ok(())
}
