//! `mcp-agent`: parse arguments, build the deployer, serve until SIGTERM/SIGINT.

use agent::args::{AgentArgs, AgentCommand};
use agent::config::AgentConfig;
use anyhow::Context;
use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    let args = agent::args::parse();
    // Colours only for a person at a terminal: log files and journald get plain text.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    if let Some(AgentCommand::Backup { file }) = &args.command {
        return exit_code(backup(&args, file));
    }
    pki::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcp-agent: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    exit_code(runtime.block_on(run(args)))
}

/// 0, or the error on stderr and 2 for bad config, 1 otherwise.
fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp-agent: {e:#}");
            let bad_input = e.downcast_ref::<agent::config::ConfigError>().is_some();
            ExitCode::from(if bad_input { 2 } else { 1 })
        }
    }
}

/// `mcp-agent backup FILE`: the registry named by `--config` (or `--dev --dir DIR`), never a
/// new one.
fn backup(args: &AgentArgs, file: &std::path::Path) -> anyhow::Result<()> {
    let db = match (&args.config, &args.dir) {
        (Some(path), _) => AgentConfig::load(path)?.registry_path(),
        (None, Some(dir)) => dir.join("state").join("registry.db"),
        (None, None) => anyhow::bail!("give --config FILE or --dev --dir DIR"),
    };
    anyhow::ensure!(db.is_file(), "no registry at {}", db.display());
    let registry =
        registry::Registry::open(&db).with_context(|| format!("opening {}", db.display()))?;
    registry
        .backup(file)
        .with_context(|| format!("copying {}", db.display()))?;
    println!("{} copied to {}", db.display(), file.display());
    Ok(())
}

async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let (config, dev_dir) = match (&args.config, &args.dir) {
        (Some(path), _) => (AgentConfig::load(path)?, None),
        (None, Some(dir)) => (
            agent::dev::prepare(
                dir,
                args.listen,
                agent::config::PodmanSection {
                    global_args: args.podman_args.clone(),
                    insecure_registries: args.insecure_registries.clone(),
                    ..Default::default()
                },
                agent::config::PortsSection {
                    range_start: args.port_range.0,
                    range_end: args.port_range.1,
                    ..Default::default()
                },
                {
                    let defaults = agent::config::MonitorSection::default();
                    agent::config::MonitorSection {
                        // The flag sets the one reconcile interval, events or not, each
                        // pass listing podman afresh.
                        interval_ms: args.monitor_interval_ms.unwrap_or(defaults.interval_ms),
                        reconcile_ms: args.monitor_interval_ms.unwrap_or(defaults.reconcile_ms),
                        relist_ms: args.monitor_interval_ms.unwrap_or(defaults.relist_ms),
                        backoff_base_ms: args.backoff_base_ms,
                        backoff_max_ms: args.backoff_max_ms,
                        ..defaults
                    }
                },
                args.proxy_bind,
                args.settings
                    .as_deref()
                    .map(agent::config::DevSettings::load)
                    .transpose()?,
            )
            .context("preparing the --dev directory")?,
            Some(dir.clone()),
        ),
        (None, None) => anyhow::bail!("give --config FILE or --dev --dir DIR"),
    };
    // The TLS files are read before anything starts: a config that cannot serve leaves no
    // proxy, registry or probe behind.
    let tls = (
        agent::server::tls_config(&config.tls)?,
        agent::server::access_policy(&config.tls),
    );
    let started = agent::startup::start(&config).await?;
    for line in &started.recovered {
        tracing::warn!("recovered: {line}");
    }
    let (deployer, node, proxy, podman, podman_api, vms, events_connected) = (
        started.deployer,
        started.node,
        started.proxy,
        started.podman,
        started.podman_api,
        started.vms,
        started.events_connected,
    );
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let bound = listener.local_addr().context("reading the bound address")?;
    if let Some(dir) = &dev_dir {
        let cli = agent::dev::write_cli_config(dir, &config, bound)?;
        println!("CLI config: {}", cli.display());
    }
    // Tests and scripts wait for this exact line.
    println!("mcp-agent listening on {bound} as node {}", config.node);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Changes seen by podman's event stream or a VM's exit wake the monitor at once.
    let (wake_tx, wake_rx) = tokio::sync::mpsc::channel(64);
    if let Some(link) = &podman_api {
        agent::monitor::watch::follow_podman(
            Arc::clone(link),
            config.podman.events_file.as_deref(),
            &config.podman.global_args,
            wake_tx.clone(),
            Arc::clone(&events_connected),
            deployer.observed(),
            stop_rx.clone(),
        )
        .await;
    }
    if let Some(vms) = vms {
        tokio::spawn(agent::monitor::watch::vm_exits(
            vms,
            wake_tx.clone(),
            stop_rx.clone(),
        ));
    }
    drop(wake_tx);
    let monitor = tokio::spawn(agent::monitor::run(
        Arc::clone(&deployer),
        agent::monitor::Schedule {
            interval: config.monitor.interval(),
            reconcile: config.monitor.reconcile(),
            relist: config.monitor.relist(),
            events_connected,
            wake: wake_rx,
        },
        config.monitor.policy(),
        stop_rx.clone(),
    ));
    let health = tokio::spawn(agent::monitor::run_health(
        Arc::clone(&deployer),
        config.monitor.policy(),
        stop_rx.clone(),
    ));
    let watchdog =
        proxy.map(|link| tokio::spawn(link.watch(Arc::clone(&deployer), stop_rx.clone())));
    let api_watchdog = podman_api
        .clone()
        .map(|link| tokio::spawn(link.watch(stop_rx.clone())));
    let shutdown = async move {
        shutdown_signal().await;
        // The monitor finishes the pass it is in, then stops.
        let _ = stop_tx.send(true);
    };
    agent::server::serve(deployer, node, podman, listener, tls, shutdown).await?;
    for (task, handle) in [("monitor", monitor), ("health checker", health)] {
        if let Err(e) = handle.await {
            tracing::error!(task, error = %e, "ended abnormally");
        }
    }
    if let Some(watchdog) = watchdog
        && let Err(e) = watchdog.await
    {
        tracing::error!(error = %e, "the proxy watchdog ended abnormally");
    }
    if let Some(watchdog) = api_watchdog {
        let _ = watchdog.await;
    }
    if let Some(link) = podman_api {
        link.shutdown().await;
    }
    tracing::info!("stopped; workloads and the node proxy keep running");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the agent with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}
