//! `trace-worklog`: loads the configuration, binds the gRPC port and runs the worklog service
//! until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use tokio_util::sync::CancellationToken;
use trace_runtime::clock::SystemClock;
use trace_worklog::WorklogConfig;

/// Worklog service of the full-process trace system.
#[derive(Debug, Parser)]
#[command(version)]
struct Arguments {
    /// TOML configuration file; `TRACE_`-prefixed environment variables override it.
    #[arg(long, env = "TRACE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let arguments = Arguments::parse();
    let config = match WorklogConfig::load(arguments.config.as_deref()) {
        Ok(config) => config,
        Err(error) => exit_with_config_error(&error),
    };
    if let Err(error) = config.validate() {
        exit_with_config_error(&error);
    }

    let settings = &config.service;
    let _telemetry =
        trace_runtime::telemetry::init("worklog", settings.log_format, &settings.log_level)?;
    let listener = tokio::net::TcpListener::bind(settings.grpc_addr).await?;
    tracing::info!(address = %listener.local_addr()?, "bound grpc listener");

    let shutdown = CancellationToken::new();
    trace_runtime::app::cancel_on_signal(shutdown.clone());
    trace_worklog::run(config, listener, Arc::new(SystemClock), shutdown).await
}

fn exit_with_config_error(error: &dyn std::error::Error) -> ! {
    eprintln!("trace-worklog: {error}");
    std::process::exit(2)
}
