//! Status under load, from an independent gRPC client (not the CLI): 3000 `Status` RPCs with
//! 64 in flight over one mTLS channel, while 10 services deploy and undeploy in a loop; the
//! latency distribution, the calls that failed or missed a 10 s deadline, and the agent's peak
//! resident memory meanwhile.

use anyhow::Context;
use mcp_proto::v1 as pb;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::{Ctx, web_service};
use crate::agent::{Agent, AgentOptions};
use crate::procfs;
use crate::report::{Report, Row};
use crate::stats::{fmt_kib, fmt_ms, ms};

const CALLS: usize = 3000;
const IN_FLIGHT: usize = 64;
const CHURNING: usize = 10;
const DEADLINE: Duration = Duration::from_secs(10);
pub const P99_TARGET_MS: f64 = 200.0;
pub const RSS_TARGET_MIB: f64 = 64.0;

/// The `p`-th percentile (0–100) of `samples`, nearest rank.
fn percentile(samples: &[f64], p: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn run(ctx: &Ctx<'_>, report: &mut Report) -> anyhow::Result<()> {
    let agent = Agent::start(ctx.sb, "load", AgentOptions::default())?;
    let stop = Arc::new(AtomicBool::new(false));
    let deploys = Arc::new(AtomicUsize::new(0));
    // The churn: each thread deploys and undeploys its own service until told to stop.
    let churn: Vec<_> = (0..CHURNING)
        .map(
            |i| -> anyhow::Result<std::thread::JoinHandle<anyhow::Result<()>>> {
                let name = format!("churn-{i}");
                let def = agent.definition(
                    &name,
                    &web_service(&name, &ctx.sb.image, super::free_port()?),
                )?;
                let mut deploy = agent.mcp_command(&["deploy", &def.to_string_lossy()]);
                let mut undeploy = agent.mcp_command(&["undeploy", &name, "--yes"]);
                let (stop, deploys) = (Arc::clone(&stop), Arc::clone(&deploys));
                Ok(std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        anyhow::ensure!(deploy.output()?.status.success(), "a churn deploy failed");
                        deploys.fetch_add(1, Ordering::Relaxed);
                        anyhow::ensure!(
                            undeploy.output()?.status.success(),
                            "a churn undeploy failed"
                        );
                    }
                    Ok(())
                }))
            },
        )
        .collect::<anyhow::Result<_>>()?;
    // Peak memory while it runs.
    let pid = agent.pid()?;
    let sampler = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut peak = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if let Ok((rss, _)) = procfs::memory_kib(pid) {
                    peak = peak.max(rss);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            peak
        })
    };
    // Let the churn get going before the first call.
    std::thread::sleep(Duration::from_secs(2));
    let started = Instant::now();
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the load client's runtime")?
        .block_on(calls(&agent));
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for thread in churn {
        thread
            .join()
            .map_err(|_| anyhow::anyhow!("a churn thread panicked"))??;
    }
    let peak_kib = sampler.join().unwrap_or(0) as f64;
    let (latencies, failures) = outcome?;
    let p50 = percentile(&latencies, 50.0);
    let p99 = percentile(&latencies, 99.0);
    let runs = format!(
        "{CALLS} calls, {IN_FLIGHT} in flight, {:.1} s; {} deploys meanwhile",
        elapsed.as_secs_f64(),
        deploys.load(Ordering::Relaxed)
    );
    for (figure, value, target, met) in [
        ("p50", p50, "–".to_string(), None),
        (
            "p99",
            p99,
            format!("≤ {P99_TARGET_MS:.0} ms"),
            Some(p99 <= P99_TARGET_MS),
        ),
    ] {
        report.row(Row {
            figure: format!("`Status` RPC {figure} under load (independent gRPC client)"),
            mcp: fmt_ms(value),
            baseline: "–".into(),
            ratio: None,
            target,
            met,
            runs: runs.clone(),
        });
    }
    report.row(Row {
        figure: "`Status` RPCs failed or past a 10 s deadline, under load".into(),
        mcp: failures.to_string(),
        baseline: "–".into(),
        ratio: None,
        target: "0".into(),
        met: Some(failures == 0),
        runs: runs.clone(),
    });
    report.row(Row {
        figure: "`mcp-agent` peak RSS under load".into(),
        mcp: fmt_kib(peak_kib),
        baseline: "–".into(),
        ratio: None,
        target: format!("≤ {RSS_TARGET_MIB:.0} MiB"),
        met: Some(peak_kib / 1024.0 <= RSS_TARGET_MIB),
        runs,
    });
    Ok(())
}

/// The calls: `IN_FLIGHT` tasks take the next call number until `CALLS` are made. Returns
/// the latencies of the calls that answered and the number that did not.
async fn calls(agent: &Agent<'_>) -> anyhow::Result<(Vec<f64>, usize)> {
    let config_path = agent.cli_config();
    let config = mcp_client::CliConfig::load(&config_path)
        .with_context(|| format!("reading {}", config_path.display()))?;
    let node = config
        .nodes
        .first()
        .context("the agent's CLI config names no node")?;
    let client = mcp_client::connect(node, &config.tls).await?;
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..IN_FLIGHT {
        let (mut client, next) = (client.clone(), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = 0;
            while next.fetch_add(1, Ordering::Relaxed) < CALLS {
                let start = Instant::now();
                let call = client.status(pb::StatusRequest {
                    service: String::new(),
                });
                match tokio::time::timeout(DEADLINE, call).await {
                    Ok(Ok(_)) => latencies.push(ms(start.elapsed())),
                    _ => failures += 1,
                }
            }
            (latencies, failures)
        }));
    }
    let mut latencies = Vec::new();
    let mut failures = 0;
    for task in tasks {
        let (mine, failed) = task.await.context("a load task panicked")?;
        latencies.extend(mine);
        failures += failed;
    }
    Ok((latencies, failures))
}
