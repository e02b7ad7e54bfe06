//! Log installation shared by the binaries (the library only emits): stderr, `RUST_LOG` filters (default
//! `warn`), `BOTDB_LOG_JSON=1` for one JSON object per line.

/// Installs the global tracing subscriber.
pub(crate) fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let logs = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter);
    if std::env::var("BOTDB_LOG_JSON").is_ok_and(|v| v == "1" || v == "true") {
        logs.json().init();
    } else {
        logs.init();
    }
}
