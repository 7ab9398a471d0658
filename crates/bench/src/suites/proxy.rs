//! Traffic through the node proxy, side by side in one run with wrk as the load generator:
//! straight to the backend (the baseline), through `mcp-proxy` in l4 and l7 mode, and
//! through HAProxy configured for the same routes (tcp and http mode), over keep-alive and
//! over a new connection per request. The backend is nginx answering a 6-byte body, so the
//! figures are the proxies' cost, not an application's. Then the time from "new instance
//! healthy" to "proxy switched" during real redeploys through the agent.

use anyhow::{Context, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Ctx, MONITOR_OFF_MS, free_port};
use crate::agent::{Agent, AgentOptions};
use crate::interrupt;
use crate::report::{Report, Row};
use crate::stats::{fmt_ms, median, spread};

/// Throughput through mcp-proxy, as a share of going straight to the backend.
const THROUGHPUT_TARGET: f64 = 0.90;
/// mcp-proxy's p99 latency over HAProxy's for the same route.
const P99_TARGET: f64 = 1.2;
/// "New instance healthy" → "proxy switched".
const SWITCH_TARGET_MS: f64 = 50.0;

/// A server process of this suite; killed when dropped.
struct Server {
    child: Child,
}

impl Server {
    fn start(what: &'static str, mut cmd: Command, log: &Path) -> anyhow::Result<Self> {
        let out =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| {
                format!("starting {what} (is it installed? scripts/bench.sh installs it)")
            })?;
        Ok(Self { child })
    }
}

impl Drop for Server {
    /// SIGTERM first: nginx's master stops its workers then (SIGKILL would orphan them).
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The five ways a request reaches the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Via {
    Direct,
    McpL4,
    HaproxyTcp,
    McpL7,
    HaproxyHttp,
}

impl Via {
    const ALL: [Via; 5] = [
        Via::Direct,
        Via::McpL4,
        Via::HaproxyTcp,
        Via::McpL7,
        Via::HaproxyHttp,
    ];

    fn label(self) -> &'static str {
        match self {
            Via::Direct => "direct",
            Via::McpL4 => "mcp-proxy l4",
            Via::HaproxyTcp => "HAProxy tcp",
            Via::McpL7 => "mcp-proxy l7",
            Via::HaproxyHttp => "HAProxy http",
        }
    }
}

/// One wrk run's figures.
#[derive(Debug, Clone, Copy)]
struct Load {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

pub fn run(ctx: &Ctx<'_>, report: &mut Report) -> anyhow::Result<()> {
    let dir = ctx.sb.subdir("proxy")?;
    let backend = free_port()?;
    let _nginx = Server::start("nginx", nginx(&dir, backend)?, &dir.join("nginx.log"))?;
    let ports: BTreeMap<Via, u16> = [
        (Via::Direct, backend),
        (Via::McpL4, free_port()?),
        (Via::HaproxyTcp, free_port()?),
        (Via::McpL7, free_port()?),
        (Via::HaproxyHttp, free_port()?),
    ]
    .into_iter()
    .collect();
    let _haproxy = Server::start(
        "haproxy",
        haproxy(
            &dir,
            backend,
            ports[&Via::HaproxyTcp],
            ports[&Via::HaproxyHttp],
        )?,
        &dir.join("haproxy.log"),
    )?;
    let _proxy = mcp_proxy(ctx, &dir, backend, ports[&Via::McpL4], ports[&Via::McpL7])?;
    for (path, port) in &ports {
        ctx.poller
            .first_200(*port, Duration::from_secs(10))
            .with_context(|| format!("{} on port {port} never answered", path.label()))?;
    }

    for keep_alive in [true, false] {
        let mut results: BTreeMap<Via, Vec<Load>> = BTreeMap::new();
        for round in 0..ctx.args.runs.max(1) {
            // Rotating the order keeps a drift of the machine's speed from favouring a path.
            let mut order = Via::ALL.to_vec();
            order.rotate_left(round % Via::ALL.len());
            for path in order {
                eprintln!(
                    "mcp-bench: proxy round {}/{} {} {}",
                    round + 1,
                    ctx.args.runs,
                    if keep_alive {
                        "keep-alive"
                    } else {
                        "new connections"
                    },
                    path.label()
                );
                let load = wrk(ctx, ports[&path], keep_alive)?;
                results.entry(path).or_default().push(load);
            }
        }
        rows(report, keep_alive, &results);
    }
    switch_time(ctx, report)
}

fn med(loads: &[Load], f: fn(&Load) -> f64) -> f64 {
    median(&loads.iter().map(f).collect::<Vec<_>>()).unwrap_or(f64::NAN)
}

fn rows(report: &mut Report, keep_alive: bool, results: &BTreeMap<Via, Vec<Load>>) {
    let how = if keep_alive {
        "keep-alive"
    } else {
        "new connection per request"
    };
    let get = |p: Via| results.get(&p).map(Vec::as_slice).unwrap_or(&[]);
    let direct_rps = med(get(Via::Direct), |l| l.rps);
    for (ours, theirs) in [
        (Via::McpL4, Via::HaproxyTcp),
        (Via::McpL7, Via::HaproxyHttp),
    ] {
        let rps = med(get(ours), |l| l.rps);
        let ratio = rps / direct_rps;
        report.row(Row {
            figure: format!("Requests/s, {how}: {} vs direct", ours.label()),
            mcp: format!("{rps:.0}/s"),
            baseline: format!("{direct_rps:.0}/s (direct to the backend)"),
            ratio: Some(ratio),
            target: format!("≥ {THROUGHPUT_TARGET:.2}×"),
            met: Some(ratio >= THROUGHPUT_TARGET),
            runs: format!(
                "{} ({})",
                get(ours).len(),
                spread(
                    &get(ours).iter().map(|l| l.rps).collect::<Vec<_>>(),
                    |v| format!("{v:.0}")
                )
            ),
        });
        let p99 = med(get(ours), |l| l.p99_ms);
        let their_p99 = med(get(theirs), |l| l.p99_ms);
        let ratio = p99 / their_p99;
        report.row(Row {
            figure: format!("p99 latency, {how}: {} vs {}", ours.label(), theirs.label()),
            mcp: fmt_ms(p99),
            baseline: format!("{} ({})", fmt_ms(their_p99), theirs.label()),
            ratio: Some(ratio),
            target: format!("≤ {P99_TARGET:.1}×"),
            met: Some(ratio <= P99_TARGET),
            runs: format!(
                "{} ({})",
                get(ours).len(),
                spread(
                    &get(ours).iter().map(|l| l.p99_ms).collect::<Vec<_>>(),
                    fmt_ms
                )
            ),
        });
    }
    let all: Vec<String> = Via::ALL
        .iter()
        .map(|&p| {
            let loads = get(p);
            format!(
                "{} {:.0}/s p50 {} p99 {}{}",
                p.label(),
                med(loads, |l| l.rps),
                fmt_ms(med(loads, |l| l.p50_ms)),
                fmt_ms(med(loads, |l| l.p99_ms)),
                match loads.iter().map(|l| l.errors).sum::<u64>() {
                    0 => String::new(),
                    n => format!(" ({n} socket errors)"),
                }
            )
        })
        .collect();
    report.note(format!("Proxy, {how} (medians): {}.", all.join("; ")));
}

/// nginx answering every request with a 6-byte body, keep-alive allowed.
fn nginx(dir: &Path, port: u16) -> anyhow::Result<Command> {
    let root = dir.join("nginx");
    std::fs::create_dir_all(&root)?;
    let d = root.display();
    let conf = format!(
        "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  keepalive_requests 1000000;\n\
           client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           server {{\n    listen 127.0.0.1:{port};\n\
             location / {{ default_type text/plain; return 200 \"hello\\n\"; }}\n  }}\n}}\n"
    );
    let path = root.join("nginx.conf");
    std::fs::write(&path, conf)?;
    let mut cmd = Command::new("nginx");
    cmd.arg("-e")
        .arg(root.join("error.log"))
        .arg("-p")
        .arg(&root)
        .arg("-c")
        .arg(&path);
    Ok(cmd)
}

/// HAProxy with the same two routes: tcp mode and http mode (backend connections reused).
fn haproxy(dir: &Path, backend: u16, tcp: u16, http: u16) -> anyhow::Result<Command> {
    let conf = format!(
        "global\n  maxconn 4096\n  nbthread 2\n\
         defaults\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
         frontend l4\n  mode tcp\n  bind 127.0.0.1:{tcp}\n  default_backend be_l4\n\
         backend be_l4\n  mode tcp\n  server s1 127.0.0.1:{backend}\n\
         frontend l7\n  mode http\n  bind 127.0.0.1:{http}\n  default_backend be_l7\n\
         backend be_l7\n  mode http\n  http-reuse always\n  server s1 127.0.0.1:{backend}\n"
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, conf)?;
    let mut cmd = Command::new("haproxy");
    cmd.arg("-db").arg("-f").arg(&path);
    Ok(cmd)
}

/// A bare mcp-proxy (the same binary the agent runs) with an l4 and an l7 route.
fn mcp_proxy(ctx: &Ctx<'_>, dir: &Path, backend: u16, l4: u16, l7: u16) -> anyhow::Result<Server> {
    let state = dir.join("mcp-proxy");
    let mut cmd = Command::new(ctx.sb.bins.join("mcp-proxy"));
    cmd.arg("--state-dir")
        .arg(&state)
        .args(["--bind", "127.0.0.1"]);
    let server = Server::start("mcp-proxy", cmd, &dir.join("mcp-proxy.log"))?;
    let socket = state.join("control.sock");
    let backend = std::net::SocketAddr::from(([127, 0, 0, 1], backend));
    let route = |port: u16, mode: proxy::table::Mode| proxy::table::Route {
        service: "bench".into(),
        component: "web".into(),
        route: format!("{mode:?}").to_lowercase(),
        port,
        mode,
        hostname: None,
        backend,
        tls: None,
    };
    let table = proxy::table::Table {
        routes: vec![
            route(l4, proxy::table::Mode::L4),
            route(l7, proxy::table::Mode::L7),
        ],
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match proxy::control::Client::connect(&socket).await {
                Ok(mut client) => {
                    return client
                        .apply(&table)
                        .await
                        .map_err(|e| anyhow::anyhow!("programming mcp-proxy: {e}"));
                }
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => bail!("mcp-proxy did not open {}: {e}", socket.display()),
            }
        }
    })?;
    Ok(server)
}

/// One wrk run against 127.0.0.1:`port`.
fn wrk(ctx: &Ctx<'_>, port: u16, keep_alive: bool) -> anyhow::Result<Load> {
    interrupt::check()?;
    let mut cmd = Command::new("wrk");
    cmd.args(["-t2", "--latency"])
        .arg(format!("-c{}", ctx.args.connections))
        .arg(format!("-d{}s", ctx.args.load_secs));
    if !keep_alive {
        cmd.args(["-H", "Connection: close"]);
    }
    cmd.arg(format!("http://127.0.0.1:{port}/"));
    let out = cmd
        .output()
        .context("running wrk (scripts/bench.sh installs it)")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    }
    parse_wrk(&text).with_context(|| format!("reading wrk's output:\n{text}"))
}

fn parse_wrk(text: &str) -> anyhow::Result<Load> {
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::trim)
    };
    let rps: f64 = field("Requests/sec:")
        .context("no Requests/sec")?
        .parse()
        .context("Requests/sec")?;
    let p50 = duration_ms(field("50%").context("no 50% latency")?)?;
    let p99 = duration_ms(field("99%").context("no 99% latency")?)?;
    let mut errors = 0;
    if let Some(socket) = field("Socket errors:") {
        errors += socket
            .split(',')
            .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
            .sum::<u64>();
    }
    if let Some(non2xx) = field("Non-2xx or 3xx responses:") {
        errors += non2xx.parse::<u64>().unwrap_or(0);
    }
    Ok(Load {
        rps,
        p50_ms: p50,
        p99_ms: p99,
        errors,
    })
}

/// wrk's `123.45us`, `1.20ms`, `2.00s` in milliseconds.
fn duration_ms(text: &str) -> anyhow::Result<f64> {
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        bail!("unknown duration {text:?}")
    };
    Ok(number.parse::<f64>().context("a wrk duration")? * scale)
}

/// Redeploys of a routed service through the agent: from the agent's debug log, how long
/// the proxy switch took after the new instance passed its check.
fn switch_time(ctx: &Ctx<'_>, report: &mut Report) -> anyhow::Result<()> {
    let agent = Agent::start(
        ctx.sb,
        "switch",
        AgentOptions {
            log: "info,agent=debug".into(),
            monitor_interval_ms: Some(MONITOR_OFF_MS),
            ..AgentOptions::default()
        },
    )?;
    let port = free_port()?;
    let name = "bench-switch";
    let body = |greeting: usize| {
        format!(
            "name = \"{name}\"\nnode = \"local\"\n[[components]]\nname = \"web\"\nimage = \"{}\"\n\
             env = [\"GREETING=v{greeting}\"]\n[[components.routes]]\nport = {port}\n\
             [components.health]\nhttp = \"/up\"\n",
            ctx.sb.image
        )
    };
    let def: PathBuf = agent.definition(name, &body(0))?;
    agent.mcp(&["deploy", &def.to_string_lossy()])?;
    let mut switch_ms = Vec::new();
    let mut deploy_ms = Vec::new();
    for i in 1..=ctx.args.runs.max(1) {
        interrupt::check()?;
        std::fs::write(&def, body(i))?;
        let offset = agent.log_offset();
        let started = Instant::now();
        agent.mcp(&["deploy", &def.to_string_lossy()])?;
        deploy_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        let log = agent.log_since(offset);
        let us = log
            .lines()
            .filter(|l| l.contains("proxy switched"))
            .filter_map(|l| {
                l.split_once("elapsed_us=")?
                    .1
                    .split_whitespace()
                    .next()?
                    .parse::<f64>()
                    .ok()
            })
            .next()
            .context("the agent logged no proxy switch")?;
        switch_ms.push(us / 1000.0);
    }
    agent.mcp(&["undeploy", name])?;
    let mine = median(&switch_ms).unwrap_or(f64::NAN);
    report.row(Row {
        figure:
            "New instance healthy → proxy switched (agent → mcp-proxy, table from the registry)"
                .into(),
        mcp: fmt_ms(mine),
        baseline: "–".into(),
        ratio: None,
        target: format!("< {SWITCH_TARGET_MS:.0} ms"),
        met: Some(mine < SWITCH_TARGET_MS),
        runs: format!("{} ({})", switch_ms.len(), spread(&switch_ms, fmt_ms)),
    });
    report.note(format!(
        "Zero-downtime redeploy of a routed container (new instance beside the old, GET /up, \
         switch, drain, remove): `mcp deploy` took {} (median of {}).",
        fmt_ms(median(&deploy_ms).unwrap_or(f64::NAN)),
        deploy_ms.len()
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn wrk_output_is_read() {
        let text = "Running 5s test @ http://127.0.0.1:1/\n  2 threads and 32 connections\n\
            Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency   301.00us  100.00us   5.00ms   90.00%\n\
            Latency Distribution\n     50%  250.00us\n     75%  300.00us\n     90%  400.00us\n     99%    1.50ms\n\
            100000 requests in 5.00s, 10.00MB read\n  Socket errors: connect 0, read 3, write 0, timeout 1\n\
            Requests/sec:  20000.50\nTransfer/sec:      2.00MB\n";
        let load = parse_wrk(text).unwrap();
        assert!((load.rps - 20000.5).abs() < 1e-6);
        assert!((load.p50_ms - 0.25).abs() < 1e-9);
        assert!((load.p99_ms - 1.5).abs() < 1e-9);
        assert_eq!(load.errors, 4);
        assert!((duration_ms("2.00s").unwrap() - 2000.0).abs() < 1e-9);
    }
}
