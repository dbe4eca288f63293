//! `trace-archive`: loads configuration, starts telemetry, binds the gRPC port and runs the
//! archive until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use tokio_util::sync::CancellationToken;
use trace_archive::config::ArchiveConfig;

/// The archive service of the trace system.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// TOML configuration file; `TRACE_`-prefixed environment variables override it.
    #[arg(long, env = "TRACE_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = match trace_runtime::config::load(&ArchiveConfig::default(), cli.config.as_deref())
        .map_err(anyhow::Error::from)
        .and_then(|config: ArchiveConfig| config.validate().map(|()| config).map_err(Into::into))
    {
        Ok(config) => config,
        Err(error) => {
            eprintln!("trace-archive: {error:#}");
            std::process::exit(2);
        }
    };
    let _telemetry = trace_runtime::telemetry::init(
        "archive",
        config.service.log_format,
        &config.service.log_level,
    )?;

    let listener = tokio::net::TcpListener::bind(config.service.grpc_addr).await?;
    let shutdown = CancellationToken::new();
    trace_runtime::app::cancel_on_signal(shutdown.clone());
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        "trace-archive starting"
    );
    trace_archive::run(
        config,
        listener,
        Arc::new(trace_runtime::clock::SystemClock),
        shutdown,
    )
    .await
}
