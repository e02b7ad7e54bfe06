//! `botdb-admin`: maintenance of a botdb database. Results are JSON on stdout, logs go to stderr; any error
//! exits non-zero with a one-line reason on stderr.

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = cli::Args::parse();
    // Logs to stderr; RUST_LOG filters; BOTDB_LOG_JSON=1 switches to one JSON object per line.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let logs = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter);
    if std::env::var("BOTDB_LOG_JSON").is_ok_and(|v| v == "1" || v == "true") {
        logs.json().init();
    } else {
        logs.init();
    }
    match commands::run(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
