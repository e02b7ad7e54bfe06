//! `botdb-admin`: maintenance of a botdb database. Results are JSON on stdout, logs go to stderr; any error
//! exits non-zero with a one-line reason on stderr.

#[path = "../shared/logging.rs"]
mod logging;

mod cli;
mod commands;
mod verify;

use std::process::ExitCode;

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = cli::Args::parse();
    logging::init();
    match commands::run(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
