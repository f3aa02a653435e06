//! The benchmark's scenarios, each one JSON line.

use std::time::{Duration, Instant};

use super::{
    nats_cluster::NatsCluster,
    probe::ReloadProbe,
    publisher::{self, Plan, Published, Via},
    raw,
    receiver::{Blackhole, Ledger, Receiver, Tally},
    report::{round, secs, BenchError, Report, Scenario, Size},
    rig::{settle, ChildWorker, Rig, RunningWorker, Sub},
    stats::{cpu_s_of, cpu_s_with_reaped_of, ratio, rss_mib, rss_mib_of, CpuMeter, CpuUse},
};

/// How big each scenario runs.
struct Dims {
    /// POSTs of each `raw` measurement.
    raw_posts: usize,
    /// Events of `throughput`.
    events: usize,
    fanout_subs: usize,
    fanout_events: usize,
    latency_rate: f64,
    latency_secs: f64,
    isolation_healthy: usize,
    isolation_rate: f64,
    isolation_secs: f64,
    scale_subs: usize,
    /// Events of `durable`, and of its same-run core-mode comparison.
    durable_events: usize,
    /// The `ratelimit` subscription's limit (deliveries/s).
    ratelimit_rate: f64,
    /// Seconds over which `ratelimit` measures the achieved rate.
    ratelimit_window_secs: f64,
    /// Events of each flat-out run of `templates`.
    template_events: usize,
    /// Templated subscriptions of the steady phases of `templates`, their publish
    /// rate and how long each phase lasts.
    template_healthy: usize,
    template_rate: f64,
    template_secs: f64,
    /// Events of `cluster`, and their publish rate.
    cluster_events: usize,
    cluster_rate: f64,
    /// How long without a new arrival before the missing ones count as lost.
    stall: Duration,
    /// Delivery-log rows of `stats`.
    stats_rows: usize,
    /// Events of `burst`.
    burst_events: usize,
}

impl Dims {
    fn of(size: Size) -> Self {
        match size {
            Size::Full => Self {
                raw_posts: 50_000,
                events: 100_000,
                fanout_subs: 100,
                fanout_events: 1_000,
                latency_rate: 1_000.0,
                latency_secs: 10.0,
                isolation_healthy: 10,
                isolation_rate: 100.0,
                isolation_secs: 10.0,
                scale_subs: 10_000,
                durable_events: 20_000,
                ratelimit_rate: 200.0,
                ratelimit_window_secs: 5.0,
                template_events: 20_000,
                template_healthy: 4,
                template_rate: 100.0,
                template_secs: 10.0,
                cluster_events: 40_000,
                cluster_rate: 2_000.0,
                stall: Duration::from_secs(15),
                stats_rows: 1_000_000,
                burst_events: 100_000,
            },
            Size::Small => Self {
                raw_posts: 500,
                events: 500,
                fanout_subs: 10,
                fanout_events: 50,
                latency_rate: 1_000.0,
                latency_secs: 0.2,
                isolation_healthy: 10,
                isolation_rate: 100.0,
                isolation_secs: 0.5,
                scale_subs: 100,
                durable_events: 500,
                ratelimit_rate: 200.0,
                ratelimit_window_secs: 1.0,
                template_events: 500,
                template_healthy: 4,
                template_rate: 100.0,
                template_secs: 1.0,
                cluster_events: 1_000,
                cluster_rate: 500.0,
                stall: Duration::from_secs(10),
                stats_rows: 20_000,
                burst_events: 2_000,
            },
        }
    }
}

const STOP_WAIT: Duration = Duration::from_secs(3);
/// How long a worker process may take to exit on SIGTERM (its drain and deferred
/// writes, then the process's exit) before it is killed.
const CHILD_STOP_WAIT: Duration = Duration::from_secs(5);

pub async fn run(scenario: Scenario, size: Size) -> Result<Report, BenchError> {
    super::clock::init();
    let dims = Dims::of(size);
    let mut report = Report::new(scenario);
    match scenario {
        Scenario::Raw => raw_only(&dims, &mut report).await?,
        Scenario::Throughput => throughput(&dims, &mut report).await?,
        Scenario::Fanout => fanout(&dims, &mut report).await?,
        Scenario::Filters => filters(&dims, &mut report).await?,
        Scenario::Latency => latency(&dims, &mut report).await?,
        Scenario::Isolation => isolation(&dims, &mut report).await?,
        Scenario::Scale => scale(&dims, &mut report).await?,
        Scenario::Durable => durable(&dims, &mut report).await?,
        Scenario::Ratelimit => ratelimit(&dims, &mut report).await?,
        Scenario::Templates => templates(&dims, &mut report).await?,
        Scenario::Cluster => cluster(&dims, &mut report).await?,
        Scenario::Stats => super::console_stats::run(dims.stats_rows, &mut report).await?,
        Scenario::Burst => burst(&dims, &mut report).await?,
    }
    Ok(report)
}

/// The worker's per-subscription in-flight cap, which the raw client matches.
fn concurrency() -> Result<usize, BenchError> {
    let defaults = decnet_webhook::config::Settings::from_pairs(Vec::<(&str, &str)>::new())
        .map_err(|e| BenchError::setup("default settings", e))?;
    Ok(defaults.webhook.max_inflight_per_sub)
}

/// A receiver's ceiling and what reaching it cost the machine.
struct Ceiling {
    posts_per_s: f64,
    /// Busy CPU µs per POST, client and receiver together.
    cpu_us_per_post: f64,
    /// CPU µs per POST of the client's thread alone.
    client_cpu_us_per_post: Option<f64>,
}

/// POST/s of a fresh receiver from an awc client at the worker's concurrency.
async fn ceiling(n: usize, report: &mut Report) -> Result<Ceiling, BenchError> {
    let c = concurrency()?;
    let receiver = Receiver::start(Ledger::new(1, n))?;
    let cpu = CpuMeter::now();
    let run = raw::measure(receiver.url(0), n, c).await?;
    let used = cpu_since(cpu);
    let tally = receiver.ledger.tally(0..1, 0..n);
    report.check("raw POSTs received", n as u64, tally.delivered);
    report.check("raw duplicates", 0, tally.duplicated);
    report.set("concurrency", c);
    let posts = tally.delivered.max(1) as f64;
    Ok(Ceiling {
        posts_per_s: if run.elapsed_s > 0.0 {
            n as f64 / run.elapsed_s
        } else {
            0.0
        },
        cpu_us_per_post: used.map_or(0.0, |u| u.us_per(tally.delivered)),
        client_cpu_us_per_post: run.client_cpu_s.map(|s| round(s * 1e6 / posts, 1)),
    })
}

/// CPU spent since `start` (`None` where `/proc/stat` cannot be read).
fn cpu_since(start: Option<CpuMeter>) -> Option<CpuUse> {
    Some(CpuMeter::now()?.since(&start?))
}

/// What the deliveries cost the machine: busy CPU µs per delivery (every process:
/// worker, receiver, nats-server, publisher) and how busy the cores were.
fn cpu_cost(report: &mut Report, used: Option<CpuUse>, deliveries: u64) {
    if let Some(used) = used {
        report.set("cpu_us_per_delivery", used.us_per(deliveries));
        report.set("cpu_busy", round(used.utilisation, 2));
    }
}

/// The ceiling measured before and after `work`, so drift on a shared machine
/// weighs on both sides of the ratio; returns `work`'s result and the mean.
async fn around<T>(
    d: &Dims,
    report: &mut Report,
    work: impl std::future::Future<Output = Result<T, BenchError>>,
) -> Result<(T, f64), BenchError> {
    let before = ceiling(d.raw_posts, report).await?;
    let out = work.await?;
    let after = ceiling(d.raw_posts, report).await?;
    report.set("raw_posts_per_s_before", before.posts_per_s.round());
    report.set("raw_posts_per_s_after", after.posts_per_s.round());
    let mean = (before.posts_per_s + after.posts_per_s) / 2.0;
    report.set("raw_posts_per_s", mean.round());
    report.set(
        "raw_cpu_us_per_post",
        round((before.cpu_us_per_post + after.cpu_us_per_post) / 2.0, 1),
    );
    if let (Some(b), Some(a)) = (before.client_cpu_us_per_post, after.client_cpu_us_per_post) {
        report.set("raw_client_cpu_us_per_post", round((b + a) / 2.0, 1));
    }
    Ok((out, mean))
}

async fn raw_only(d: &Dims, report: &mut Report) -> Result<(), BenchError> {
    report.set("posts", d.raw_posts);
    let raw = ceiling(d.raw_posts, report).await?;
    report.set("raw_posts_per_s", raw.posts_per_s.round());
    report.set("cpu_us_per_post", raw.cpu_us_per_post);
    report.set("raw_client_cpu_us_per_post", raw.client_cpu_us_per_post);
    Ok(())
}

/// Subscriptions `0..n` to routes `0..n` of `receiver`, all on `pattern`.
fn subs(receiver: &Receiver, n: usize, pattern: &str) -> Vec<Sub> {
    (0..n)
        .map(|route| Sub {
            url: receiver.url(route),
            patterns: vec![pattern.to_owned()],
            filter: None,
        })
        .collect()
}

/// Start the worker on the rig's rows and wait until `n` subscriptions consume.
async fn worker(rig: &Rig, n: usize) -> Result<RunningWorker, BenchError> {
    let w = rig.start_worker().await?;
    w.wait_ready(n, Duration::from_secs(30), Duration::from_millis(5))
        .await?;
    Ok(w)
}

/// Probes published (one at a time, 100 ms apart) until a worker process consumes.
const PROBES: usize = 200;

/// The worker in a process of its own on the rig's rows (`uuids`, routes `0..` of
/// `receiver`, each subscribed to `subject`), once it consumes for every one of them:
/// in durable mode once each consumer has a pull waiting, on core NATS once each route
/// got a probe, events `probes` outside the counted range (probes published before it
/// subscribed are lost, by design).
async fn child_worker(
    rig: &Rig,
    uuids: &[String],
    subject: &str,
    receiver: &Receiver,
    probes: std::ops::Range<usize>,
) -> Result<ChildWorker, BenchError> {
    let child = rig.spawn_child_worker()?;
    if rig.settings.webhook.durable {
        let client = async_nats::connect(rig.url())
            .await
            .map_err(|e| BenchError::setup("readiness client", e))?;
        for uuid in uuids {
            let consumer = decnet_webhook::bus::durable::consumer_name(uuid, subject);
            wait_pulling(&client, &rig.settings.webhook.stream, &consumer, 1).await?;
        }
        return Ok(child);
    }
    let consumes =
        || (0..uuids.len()).all(|r| receiver.ledger.delivered(r..r + 1, probes.clone()) > 0);
    for probe in probes.clone() {
        if consumes() {
            return Ok(child);
        }
        let plan = Plan {
            subject: subject.into(),
            seqs: probe..probe + 1,
            rate: None,
        };
        publisher::publish(rig.url(), plan).await?;
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    if consumes() {
        return Ok(child);
    }
    Err(BenchError("the worker process never consumed".into()))
}

/// The counts every delivery figure stands on.
fn delivery_counts(report: &mut Report, label: &str, tally: &Tally, stray: u64) {
    report.check(
        format!("{label} delivered"),
        tally.expected,
        tally.delivered,
    );
    report.check(format!("{label} duplicates"), 0, tally.duplicated);
    report.check(format!("{label} stray requests"), 0, stray);
}

/// One subscription, events published flat out. Its queue holds the whole burst:
/// this measures the delivery rate (with the default queue the excess of a burst
/// goes to the dead-letter store, by design).
async fn throughput(d: &Dims, report: &mut Report) -> Result<(), BenchError> {
    let queue = d.events.to_string();
    let rig = Rig::new(&[("webhook_queue_per_sub", &queue)]).await?;
    let run = flat_out(&rig, d.events, "bench.throughput", Via::Core, d.stall);
    let (run, raw) = around(d, report, run).await?;
    report.set("events", d.events);
    report.set("queue_per_sub", d.events);
    report_flat_out(report, "throughput", &run, raw, d.events);
    Ok(())
}

/// Many subscriptions on one subject: each event goes to every one of them.
async fn fanout(d: &Dims, report: &mut Report) -> Result<(), BenchError> {
    let (n, events) = (d.fanout_subs, d.fanout_events);
    let ((run, _rig), raw) = around(d, report, fanout_run(d, None)).await?;
    report.set("subscriptions", n);
    report.set("events", events);
    report.set("deliveries", run.tally.expected);
    report_flat_out(report, "fanout", &run, raw, events);
    Ok(())
}

/// What an operator's filter reads: the topic and payload fields. Every bench event
/// passes it, so a filtered run delivers what an unfiltered one does.
const BENCH_FILTER: &str = r#"topic is startingwith "bench." and payload.service == "ssh" and payload.src_ip not in ["10.0.0.1", "10.0.0.2"]"#;

/// `fanout` with that filter on every subscription, beside the same fan-out without
/// it, in the same run: what evaluating a filter per subscription and event costs.
async fn filters(d: &Dims, report: &mut Report) -> Result<(), BenchError> {
    let (n, events) = (d.fanout_subs, d.fanout_events);
    let run = async {
        let (plain, plain_rig) = fanout_run(d, None).await?;
        let (filtered, rig) = fanout_run(d, Some(BENCH_FILTER)).await?;
        Ok(((plain, filtered), (plain_rig, rig)))
    };
    let (((plain, filtered), _rigs), raw) = around(d, report, run).await?;
    report.set("subscriptions", n);
    report.set("events", events);
    report.set("deliveries", filtered.tally.expected);
    report.set("filter", BENCH_FILTER);
    report.set("unfiltered_deliveries_per_s", plain.tally.rate().round());
    report.set(
        "ratio_to_unfiltered",
        ratio(filtered.tally.rate(), plain.tally.rate()),
    );
    if let Some(s) = plain.worker_cpu_s {
        let per = s * 1e6 / plain.tally.delivered.max(1) as f64;
        report.set("unfiltered_worker_cpu_us_per_delivery", round(per, 1));
    }
    report_flat_out(report, "filtered", &filtered, raw, events);
    report.check(
        "unfiltered run published",
        events as u64,
        plain.published.count as u64,
    );
    delivery_counts(report, "unfiltered run", &plain.tally, plain.stray);
    stopped_check(report, "unfiltered run", &plain);
    Ok(())
}

/// One fan-out, every subscription with `filter`, the worker in its own process. The
/// rig is handed back to live as long as the scenario: a stopped worker's bus client
/// would log a lost connection if its server went earlier.
async fn fanout_run(d: &Dims, filter: Option<&str>) -> Result<(FlatOut, Rig), BenchError> {
    let rig = Rig::new(&[]).await?;
    let (n, events) = (d.fanout_subs, d.fanout_events);
    let receiver = Receiver::start(Ledger::new(n, events + PROBES))?;
    let mut rows = subs(&receiver, n, "bench.fanout");
    for row in &mut rows {
        row.filter = filter.map(str::to_owned);
    }
    let uuids = rig.insert(&rows).await?;
    let probes = events..events + PROBES;
    let w = child_worker(&rig, &uuids, "bench.fanout", &receiver, probes).await?;
    let plan = Plan {
        subject: "bench.fanout".into(),
        seqs: 0..events,
        rate: None,
    };
    let run = drive(&rig, w, &receiver, 0..n, plan, Via::Core, d.stall).await?;
    Ok((run, rig))
}

/// One subscription at a fixed publish rate: publish → arrival.
async fn latency(d: &Dims, report: &mut Report) -> Result<(), BenchError> {
    let rig = Rig::new(&[]).await?;
    let events = (d.latency_rate * d.latency_secs).round() as usize;
    let receiver = Receiver::start(Ledger::new(1, events))?;
    rig.insert(&subs(&receiver, 1, "bench.latency")).await?;
    let w = worker(&rig, 1).await?;
    let published = publisher::publish(
        rig.url(),
        Plan {
            subject: "bench.latency".into(),
            seqs: 0..events,
            rate: Some(d.latency_rate),
        },
    )
    .await?;
    let tally = settle(&receiver.ledger, 0..1, 0..events, d.stall).await;
    w.stop(STOP_WAIT).await;
    report.set("rate_per_s", d.latency_rate);
    report.set("events", events);
    report.set(
        "achieved_rate_per_s",
        (events as f64 / published.elapsed.as_secs_f64().max(1e-9)).round(),
    );
    report.set("p50_ms", tally.percentile_ms(50.0));
    report.set("p90_ms", tally.percentile_ms(90.0));
    report.set("p99_ms", tally.percentile_ms(99.0));
    report.set("max_ms", tally.percentile_ms(100.0));
    report.set("lost", tally.lost);
    report.set("duplicated", tally.duplicated);
    report.check("published", events as u64, published.count as u64);
    delivery_counts(report, "latency", &tally, stray(&receiver));
    Ok(())
}

/// Healthy subscriptions at a steady rate, without and then with a subscription
/// whose receiver accepts and never answers.
async fn isolation(d: &Dims, report: &mut Report) -> Result<(), BenchError> {
    let rig = Rig::new(&[]).await?;
    let healthy = d.isolation_healthy;
    let phase = (d.isolation_rate * d.isolation_secs).round() as usize;
    // Sequence numbers: a warm-up (opens the connections), then the two phases.
    let warm = 0..10;
    let alone = warm.end..warm.end + phase;
    let beside = alone.end..alone.end + phase;
    let receiver = Receiver::start(Ledger::new(healthy, beside.end))?;
    let blackhole = Blackhole::start()?;
    rig.insert(&subs(&receiver, healthy, "bench.isolation"))
        .await?;
    let w = worker(&rig, healthy).await?;
    let run_phase = |seqs: std::ops::Range<usize>| {
        paced_phase(
            &rig,
            &receiver,
            "bench.isolation",
            seqs,
            d.isolation_rate,
            healthy,
            d.stall,
        )
    };
    run_phase(warm).await?;
    let without = run_phase(alone).await?;
    rig.insert(&[Sub {
        url: blackhole.url(),
        patterns: vec!["bench.isolation".into()],
        filter: None,
    }])
    .await?;
    w.reload(Duration::from_secs(10), Duration::from_millis(5))
        .await?;
    w.wait_ready(
        healthy + 1,
        Duration::from_secs(10),
        Duration::from_millis(5),
    )
    .await?;
    let with = run_phase(beside).await?;
    let held = blackhole
        .accepted
        .load(std::sync::atomic::Ordering::Relaxed);
    let overflow = w.overflow();
    w.stop(STOP_WAIT).await;
    let (p99_without, p99_with) = (without.percentile_ms(99.0), with.percentile_ms(99.0));
    report.set("healthy_subscriptions", healthy);
    report.set("rate_per_s", d.isolation_rate);
    report.set("seconds_per_phase", d.isolation_secs);
    report.set("healthy_per_s_without", without.rate().round());
    report.set("healthy_per_s_with", with.rate().round());
    report.set("throughput_ratio", ratio(with.rate(), without.rate()));
    report.set("p50_ms_without", without.percentile_ms(50.0));
    report.set("p50_ms_with", with.percentile_ms(50.0));
    report.set("p99_ms_without", p99_without);
    report.set("p99_ms_with", p99_with);
    report.set("p99_ratio", ratio(p99_with, p99_without));
    report.set("blackhole_connections", held);
    report.set("overflowed", overflow);
    report.set("lost", without.lost + with.lost);
    report.set("duplicated", without.duplicated + with.duplicated);
    let stray = stray(&receiver);
    delivery_counts(report, "without the dead receiver", &without, stray);
    delivery_counts(report, "beside the dead receiver", &with, 0);
    Ok(())
}

/// What one flat-out run measured: arrivals counted before the worker stopped, CPU
/// and dead letters up to its exit.
struct FlatOut {
    published: Published,
    tally: Tally,
    /// The whole machine's.
    cpu: Option<CpuUse>,
    /// The worker process's own CPU time over the run (s).
    worker_cpu_s: Option<f64>,
    /// The worker exited by itself on SIGTERM (so it wrote what it deferred).
    stopped: bool,
    overflow: u64,
    failed: u64,
    connections: u64,
    stray: u64,
}

/// One subscription on `subject` with a fresh receiver, `events` published flat out
/// `via` core NATS or JetStream; the worker is stopped before this returns. The rig's
/// settings size the queue.
async fn flat_out(
    rig: &Rig,
    events: usize,
    subject: &str,
    via: Via,
    stall: Duration,
) -> Result<FlatOut, BenchError> {
    let receiver = Receiver::start(Ledger::new(1, events + PROBES))?;
    let uuids = rig.insert(&subs(&receiver, 1, subject)).await?;
    let probes = events..events + PROBES;
    let w = child_worker(rig, &uuids, subject, &receiver, probes).await?;
    let plan = Plan {
        subject: subject.into(),
        seqs: 0..events,
        rate: None,
    };
    drive(rig, w, &receiver, 0..1, plan, via, stall).await
}

/// Publish `plan` flat out, wait until `routes` × its events settle, and stop the
/// worker process (its delivery log and dead letters written) before anything else
/// is measured: deferred writes are this run's cost, not noise in the next ceiling.
async fn drive(
    rig: &Rig,
    w: ChildWorker,
    receiver: &Receiver,
    routes: std::ops::Range<usize>,
    plan: Plan,
    via: Via,
    stall: Duration,
) -> Result<FlatOut, BenchError> {
    let seqs = plan.seqs.clone();
    let (cpu, worker_cpu) = (CpuMeter::now(), cpu_s_with_reaped_of(w.pid()));
    let published = publisher::publish_via(rig.url(), plan, via).await?;
    let tally = settle(&receiver.ledger, routes, seqs, stall).await;
    let stopped = w.stop(CHILD_STOP_WAIT).await?;
    let cpu = cpu_since(cpu);
    let (overflow, failed) = rig.dead_letters().await?;
    Ok(FlatOut {
        published,
        tally,
        cpu,
        worker_cpu_s: worker_cpu.map(|s| stopped.cpu_s - s),
        stopped: stopped.graceful,
        overflow,
        failed,
        connections: connections(receiver),
        stray: stray(receiver),
    })
}

/// The figures and counts every flat-out run reports.
fn report_flat_out(report: &mut Report, label: &str, run: &FlatOut, raw: f64, events: usize) {
    let rate = run.tally.rate();
    report.set("publish_s", secs(run.published.elapsed));
    report.set("deliveries_per_s", rate.round());
    report.set("ratio_to_raw", ratio(rate, raw));
    report.set("lost", run.tally.lost);
    report.set("duplicated", run.tally.duplicated);
    report.set("overflowed", run.overflow);
    report.set("failed", run.failed);
    report.set("p50_ms", run.tally.percentile_ms(50.0));
    report.set("p99_ms", run.tally.percentile_ms(99.0));
    report.set("connections", run.connections);
    cpu_cost(report, run.cpu, run.tally.delivered);
    worker_cpu_cost(report, label, run);
    report.check(
        format!("{label} published"),
        events as u64,
        run.published.count as u64,
    );
    delivery_counts(report, label, &run.tally, run.stray);
}

/// The worker process's own CPU µs per delivery, and whether it stopped by itself.
fn worker_cpu_cost(report: &mut Report, label: &str, run: &FlatOut) {
    if let Some(s) = run.worker_cpu_s {
        let per = s * 1e6 / run.tally.delivered.max(1) as f64;
        report.set("worker_cpu_us_per_delivery", round(per, 1));
    }
    stopped_check(report, label, run);
}

/// A worker killed after the bound left what it deferred (dead letters included)
/// unwritten and uncounted.
fn stopped_check(report: &mut Report, label: &str, run: &FlatOut) {
    report.check(
        format!("{label} worker stopped on SIGTERM"),
        1,
        u64::from(run.stopped),
    );
}

/// `throughput` in durable mode: events published into a JetStream stream (each
/// acknowledged as stored, pipelined) and consumed through the worker's durable
/// consumer. A core-mode run of the same size, in this same run and between the same
/// two raw measurements, gives the same-run ratio.
async fn durable(d: &Dims, report: &mut Report) -> Result<(), BenchError> {
    let n = d.durable_events;
    let queue = n.to_string();
    let settings = [("webhook_queue_per_sub", queue.as_str())];
    let run = async {
        let core_rig = Rig::new(&settings).await?;
        let core = flat_out(&core_rig, n, "bench.throughput", Via::Core, d.stall).await?;
        let rig = Rig::durable("bench.>", &settings).await?;
        let durable = flat_out(&rig, n, "bench.durable", Via::JetStream, d.stall).await?;
        // The rigs (their nats-servers) live to the end of the scenario: a stopped
        // worker's bus client would log a lost connection if its server went earlier.
        Ok(((core, durable), (core_rig, rig)))
    };
    let (((core, durable), _rigs), raw) = around(d, report, run).await?;
    let (rate, core_rate) = (durable.tally.rate(), core.tally.rate());
    report.set("events", n);
    report.set("queue_per_sub", n);
    report.set("throughput_deliveries_per_s", core_rate.round());
    report.set("ratio_to_throughput", ratio(rate, core_rate));
    // JetStream acknowledged every publish as stored.
    report_flat_out(report, "durable", &durable, raw, n);
    report.check("core run published", n as u64, core.published.count as u64);
    delivery_counts(report, "core run", &core.tally, core.stray);
    stopped_check(report, "core run", &core);
    Ok(())
}

/// One subscription limited to `rate` deliveries/s, its queue holding the whole
/// burst: `rate × (window + 1)` events published at once drain at the limit. The
/// achieved rate is counted over `window` seconds from half a second after the first
/// arrival (past the bucket's initial burst, before the queue runs dry), and every
/// event must still arrive once.
async fn ratelimit(d: &Dims, report: &mut Report) -> Result<(), BenchError> {
    const SKIP_US: u64 = 500_000;
    let (rate, window) = (d.ratelimit_rate, d.ratelimit_window_secs);
    let events = (rate * (window + 1.0)).round() as usize;
    let queue = events.to_string();
    let rig = Rig::new(&[("webhook_queue_per_sub", &queue)]).await?;
    let receiver = Receiver::start(Ledger::new(1, events))?;
    let uuids = rig.insert(&subs(&receiver, 1, "bench.ratelimit")).await?;
    let uuid = uuids
        .first()
        .ok_or_else(|| BenchError("no subscription inserted".into()))?;
    decnet_webhook::db::subscriptions::update(
        &rig.db,
        entity::webhook_subscription::ActiveModel {
            uuid: sea_orm::Unchanged(uuid.clone()),
            rate_limit_per_sec: sea_orm::Set(Some(rate)),
            ..Default::default()
        },
    )
    .await
    .map_err(|e| BenchError::setup("set the rate limit", e))?;
    let w = worker(&rig, 1).await?;
    let plan = Plan {
        subject: "bench.ratelimit".into(),
        seqs: 0..events,
        rate: None,
    };
    let published = publisher::publish(rig.url(), plan).await?;
    // Draining takes about `window + 1` seconds; the stall bound applies between arrivals.
    let tally = settle(&receiver.ledger, 0..1, 0..events, d.stall).await;
    let (overflow, failed) = (w.overflow(), w.failed());
    w.stop(STOP_WAIT).await;
    let arrivals = receiver.ledger.arrivals_us(0..1, 0..events);
    let window_us = (window * 1e6).round() as u64;
    let (in_window, drain_s) = match (arrivals.first(), arrivals.last()) {
        (Some(&first), Some(&last)) => {
            let (from, to) = (first + SKIP_US, first + SKIP_US + window_us);
            let n = arrivals.iter().filter(|&&t| t >= from && t < to).count();
            (n, (last - first) as f64 / 1e6)
        }
        _ => (0, 0.0),
    };
    let achieved = in_window as f64 / window;
    let achieved_ratio = ratio(achieved, rate);
    report.set("rate_per_s", rate);
    report.set("events", events);
    report.set("queue_per_sub", events);
    report.set("window_s", window);
    report.set("in_window", in_window);
    report.set("achieved_per_s", round(achieved, 1));
    report.set("ratio", achieved_ratio);
    report.set("drain_s", round(drain_s, 3));
    report.set("lost", tally.lost);
    report.set("duplicated", tally.duplicated);
    report.set("overflowed", overflow);
    report.set("failed", failed);
    report.target(
        "achieved rate within 10 % of the limit",
        0.9,
        1.1,
        achieved_ratio,
    );
    report.check("published", events as u64, published.count as u64);
    report.check("overflowed", 0, overflow);
    report.check("failed", 0, failed);
    delivery_counts(report, "ratelimit", &tally, stray(&receiver));
    Ok(())
}

/// The template every templated bench subscription renders: the envelope's fields
/// (the event id stays the ledger's key).
const TEMPLATE: &str =
    r#"{"id": {{ id }}, "topic": {{ topic }}, "ts": {{ ts }}, "payload": {{ payload }}}"#;
/// A template whose every render runs to the time limit.
const ENDLESS: &str =
    r#"{% for i in range(13000) %}{% set s = "x" * (10000000 + i) %}{% endfor %}1"#;

/// Give the subscriptions `uuids` the template shape with `source`.
async fn set_template(rig: &Rig, uuids: &[String], source: &str) -> Result<(), BenchError> {
    for uuid in uuids {
        decnet_webhook::db::subscriptions::update(
            &rig.db,
            entity::webhook_subscription::ActiveModel {
                uuid: sea_orm::Unchanged(uuid.clone()),
                shape: sea_orm::Set("template".into()),
                template: sea_orm::Set(Some(source.into())),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| BenchError::setup("set the template", e))?;
    }
    Ok(())
}

/// What the template sandbox costs and whom a bad template holds up: one templated
/// subscription flat out beside the same run in the raw shape (same bench run, same
/// size), then templated subscriptions at a steady rate without and then beside a
/// subscription whose template runs every render to the time limit.
async fn templates(d: &Dims, report: &mut Report) -> Result<(), BenchError> {
    let n = d.template_events;
    let queue = n.to_string();
    let settings = [("webhook_queue_per_sub", queue.as_str())];
    let raw_rig = Rig::new(&settings).await?;
    let raw = flat_out(&raw_rig, n, "bench.raw", Via::Core, d.stall).await?;
    let rig = Rig::new(&settings).await?;
    let receiver = Receiver::start(Ledger::new(1, n + PROBES))?;
    let uuids = rig.insert(&subs(&receiver, 1, "bench.template")).await?;
    set_template(&rig, &uuids, TEMPLATE).await?;
    let probes = n..n + PROBES;
    let w = child_worker(&rig, &uuids, "bench.template", &receiver, probes).await?;
    let plan = Plan {
        subject: "bench.template".into(),
        seqs: 0..n,
        rate: None,
    };
    let templated = drive(&rig, w, &receiver, 0..1, plan, Via::Core, d.stall).await?;
    let (rate, raw_rate) = (templated.tally.rate(), raw.tally.rate());
    report.set("events", n);
    report.set("deliveries_per_s", rate.round());
    report.set("raw_shape_deliveries_per_s", raw_rate.round());
    report.set("ratio_to_raw_shape", ratio(rate, raw_rate));
    report.set("p50_ms", templated.tally.percentile_ms(50.0));
    report.set("p99_ms", templated.tally.percentile_ms(99.0));
    cpu_cost(report, templated.cpu, templated.tally.delivered);
    worker_cpu_cost(report, "templated", &templated);
    report.check(
        "templated published",
        n as u64,
        templated.published.count as u64,
    );
    delivery_counts(report, "templated", &templated.tally, templated.stray);
    report.check("raw shape published", n as u64, raw.published.count as u64);
    delivery_counts(report, "raw shape", &raw.tally, raw.stray);
    stopped_check(report, "raw shape", &raw);

    // Steady phases: the healthy templated subscriptions alone, then beside one whose
    // template runs to the time limit on the same events.
    let rig = Rig::new(&[]).await?;
    let healthy = d.template_healthy;
    let phase = (d.template_rate * d.template_secs).round() as usize;
    let warm = 0..10;
    let alone = warm.end..warm.end + phase;
    let beside = alone.end..alone.end + phase;
    let receiver = Receiver::start(Ledger::new(healthy, beside.end))?;
    let uuids = rig
        .insert(&subs(&receiver, healthy, "bench.templates"))
        .await?;
    set_template(&rig, &uuids, TEMPLATE).await?;
    let w = worker(&rig, healthy).await?;
    let run_phase = |seqs: std::ops::Range<usize>| {
        paced_phase(
            &rig,
            &receiver,
            "bench.templates",
            seqs,
            d.template_rate,
            healthy,
            d.stall,
        )
    };
    run_phase(warm).await?;
    let without = run_phase(alone).await?;
    let blackhole = Blackhole::start()?;
    let bad = rig
        .insert(&[Sub {
            url: blackhole.url(),
            patterns: vec!["bench.templates".into()],
            filter: None,
        }])
        .await?;
    set_template(&rig, &bad, ENDLESS).await?;
    w.reload(Duration::from_secs(10), Duration::from_millis(5))
        .await?;
    w.wait_ready(
        healthy + 1,
        Duration::from_secs(10),
        Duration::from_millis(5),
    )
    .await?;
    let with = run_phase(beside).await?;
    w.stop(STOP_WAIT).await;
    let mut bad_letters = 0;
    for uuid in &bad {
        let (_, total) = decnet_webhook::db::dead_letters::list(&rig.db, uuid, 1, 0)
            .await
            .map_err(|e| BenchError::setup("count dead letters", e))?;
        bad_letters += total;
    }
    let (p99_without, p99_with) = (without.percentile_ms(99.0), with.percentile_ms(99.0));
    report.set("healthy_subscriptions", healthy);
    report.set("rate_per_s", d.template_rate);
    report.set("seconds_per_phase", d.template_secs);
    report.set("healthy_per_s_without", without.rate().round());
    report.set("healthy_per_s_with", with.rate().round());
    report.set("throughput_ratio", ratio(with.rate(), without.rate()));
    report.set("p99_ms_without", p99_without);
    report.set("p99_ms_with", p99_with);
    report.set("p99_ratio", ratio(p99_with, p99_without));
    // Every event of the endless template is dead-lettered: the first ones at the
    // time limit, then at once while it is paused.
    report.set("endless_dead_lettered", bad_letters);
    let sent = blackhole
        .accepted
        .load(std::sync::atomic::Ordering::Relaxed);
    report.check("endless events dead-lettered", phase as u64, bad_letters);
    report.check("endless renders sent", 0, sent as u64);
    let stray = stray(&receiver);
    delivery_counts(report, "templated without the endless one", &without, stray);
    delivery_counts(report, "templated beside the endless one", &with, 0);
    Ok(())
}

/// Many subscriptions of two patterns each: time to ready, reloads, memory.
async fn scale(d: &Dims, report: &mut Report) -> Result<(), BenchError> {
    let rig = Rig::new(&[]).await?;
    let n = d.scale_subs;
    let receiver = Receiver::start(Ledger::new(n, 1))?;
    let rows: Vec<Sub> = (0..n)
        .map(|k| Sub {
            url: receiver.url(k),
            patterns: vec![format!("bench.scale.{k}.a"), format!("bench.scale.{k}.b")],
            filter: None,
        })
        .collect();
    let uuids = rig.insert(&rows).await?;
    let rss_before = rss_mib();
    let probe = ReloadProbe::install();
    let poll = Duration::from_millis(10);

    let t0 = Instant::now();
    let w = rig.start_worker().await?;
    let ready = w.wait_ready(n, Duration::from_secs(60), poll).await?;
    let ready_in = t0.elapsed();
    let rss_ready = rss_mib();

    let t0 = Instant::now();
    let after_noop = w.reload(Duration::from_secs(30), poll).await?;
    let noop_in = t0.elapsed();
    let noop = probe.last();

    // Change one row's patterns: the heaviest one-row change (its streams restart).
    let changed = &uuids[0];
    let new_patterns = vec!["bench.scale.0.a".to_owned(), "bench.scale.0.c".to_owned()];
    decnet_webhook::db::subscriptions::update(
        &rig.db,
        entity::webhook_subscription::ActiveModel {
            uuid: sea_orm::Unchanged(changed.clone()),
            topic_patterns: sea_orm::Set(serde_json::json!(new_patterns)),
            ..Default::default()
        },
    )
    .await
    .map_err(|e| BenchError::setup("update one row", e))?;
    let t0 = Instant::now();
    w.reload(Duration::from_secs(30), poll).await?;
    let after_one = w.wait_ready(n, Duration::from_secs(30), poll).await?;
    let one_in = t0.elapsed();
    let one = probe.last();
    drop(probe);

    // Both the untouched and the restarted subscription still deliver.
    for (subject, route) in [("bench.scale.1.b", 1), ("bench.scale.0.c", 0)] {
        let plan = Plan {
            subject: subject.into(),
            seqs: 0..1,
            rate: None,
        };
        publisher::publish(rig.url(), plan).await?;
        let _ = settle(&receiver.ledger, route..route + 1, 0..1, d.stall).await;
    }
    let streamed = receiver.ledger.tally(0..2, 0..1);
    w.stop(STOP_WAIT).await;

    let differing = after_one
        .running
        .iter()
        .filter(|(uuid, patterns)| ready.running.get(*uuid) != Some(patterns))
        .count();
    report.set("subscriptions", n);
    report.set("patterns", 2 * n);
    report.set("ready_s", secs(ready_in));
    report.set("noop_reload_s", secs(noop_in));
    report.set("one_row_reload_s", secs(one_in));
    report.set("rss_mib", rss_ready);
    report.set("rss_mib_before_worker", rss_before);
    report.set(
        "one_row_reload_touched",
        serde_json::json!({"started": one.started, "stopped": one.stopped, "updated": one.updated}),
    );
    report.check("ready subscriptions", n as u64, ready.running.len() as u64);
    report.check(
        "no-op reload: subscriptions unchanged",
        0,
        after_noop
            .running
            .iter()
            .filter(|(u, p)| ready.running.get(*u) != Some(p))
            .count() as u64,
    );
    report.check("no-op reload: logged", 1, u64::from(noop.seen));
    report.check("no-op reload: started", 0, noop.started);
    report.check("no-op reload: stopped", 0, noop.stopped);
    report.check("no-op reload: updated", 0, noop.updated);
    report.check("one-row reload: rows that differ", 1, differing as u64);
    report.check(
        "one-row reload: new patterns",
        1,
        u64::from(after_one.running.get(changed) == Some(&new_patterns)),
    );
    report.check("one-row reload: logged", 1, u64::from(one.seen));
    report.check("one-row reload: started", 1, one.started);
    report.check("one-row reload: stopped", 1, one.stopped);
    report.check("one-row reload: updated", 0, one.updated);
    report.check("deliveries after the reloads", 2, streamed.delivered);
    report.check("duplicates after the reloads", 0, streamed.duplicated);
    Ok(())
}

fn connections(receiver: &Receiver) -> u64 {
    receiver
        .ledger
        .connections
        .load(std::sync::atomic::Ordering::Relaxed)
}

fn stray(receiver: &Receiver) -> u64 {
    receiver
        .ledger
        .stray
        .load(std::sync::atomic::Ordering::Relaxed)
}

/// Publish `seqs` on `subject` at `rate` per second and wait until the first
/// `healthy` routes of `receiver` have them all (or delivery stalls for `stall`).
async fn paced_phase(
    rig: &Rig,
    receiver: &Receiver,
    subject: &str,
    seqs: std::ops::Range<usize>,
    rate: f64,
    healthy: usize,
    stall: Duration,
) -> Result<Tally, BenchError> {
    let plan = Plan {
        subject: subject.into(),
        seqs: seqs.clone(),
        rate: Some(rate),
    };
    publisher::publish(rig.url(), plan).await?;
    Ok(settle(&receiver.ledger, 0..healthy, seqs, stall).await)
}

/// Durable mode on a 3-node NATS cluster, the stream on three replicas, three
/// workers sharing one subscription; events are published at a steady rate, each with
/// a message id and retried until the stream acknowledges it (what a publisher that
/// must lose nothing does). Phase one: a third of the way in, the node leading the
/// stream is killed; reports what arrived (`lost`, `duplicated`), the longest gap
/// between arrivals (`pause_ms`, the failover) and each worker's share. Phase two
/// (the node back): a fourth worker, a process of its own, is killed with SIGKILL
/// halfway through; the events it held come back to the others after the consumers'
/// ack wait (`crash_redelivered`, `crash_redelivery_s`: from the kill to the last of
/// them).
async fn cluster(d: &Dims, report: &mut Report) -> Result<(), BenchError> {
    const STREAM: &str = "DECNET_EVENTS";
    const SUBJECT: &str = "bench.cluster";
    let (n, rate) = (d.cluster_events, d.cluster_rate);
    let n2 = n / 4;
    let mut nodes = NatsCluster::try_start(3).await.map_err(BenchError)?;
    let queue = n.to_string();
    let rig = Rig::on_servers(
        nodes.urls(),
        &[
            ("webhook_durable", "true"),
            ("webhook_stream_subjects", "bench.>"),
            ("webhook_stream_replicas", "3"),
            ("webhook_queue_per_sub", &queue),
            ("webhook_bus_reconnect_secs", "2"),
        ],
    )
    .await?;
    let receiver = Receiver::start(Ledger::new(1, n + n2))?;
    let uuid = rig.insert(&subs(&receiver, 1, SUBJECT)).await?.remove(0);
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(worker(&rig, 1).await?);
    }
    let client = nodes.client().await.map_err(BenchError)?;
    let leader = nodes
        .stream_leader(&client, STREAM)
        .await
        .ok_or_else(|| BenchError("the stream has no leader".into()))?;

    // Phase one: the stream's leader killed a third of the way in.
    let plan = Plan {
        subject: SUBJECT.into(),
        seqs: 0..n,
        rate: Some(rate),
    };
    let publish = publisher::publish_via(rig.url(), plan, Via::JetStreamRetrying);
    let kill_after = Duration::from_secs_f64(n as f64 / rate / 3.0);
    let kill = async {
        actix_rt::time::sleep(kill_after).await;
        nodes.kill(leader);
    };
    let (published, ()) = futures::join!(publish, kill);
    let published = published?;
    let tally = settle(&receiver.ledger, 0..1, 0..n, d.stall).await;
    let arrivals = receiver.ledger.arrivals_us(0..1, 0..n);
    let pause_us = arrivals.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    let shares: Vec<u64> = workers
        .iter()
        .map(|w| w.stats.delivered.load(std::sync::atomic::Ordering::Relaxed))
        .collect();

    // Phase two: the node back, a fourth worker in its own process killed halfway.
    nodes.restart(leader);
    nodes.wait_stream_current(&client, STREAM).await;
    let mut child = rig.spawn_child_worker()?;
    let consumer = decnet_webhook::bus::durable::consumer_name(&uuid, SUBJECT);
    wait_pulling(&client, STREAM, &consumer, 4).await?;
    let plan = Plan {
        subject: SUBJECT.into(),
        seqs: n..n + n2,
        rate: Some(rate),
    };
    let publish = publisher::publish_via(rig.url(), plan, Via::JetStreamRetrying);
    let crash = async {
        actix_rt::time::sleep(Duration::from_secs_f64(n2 as f64 / rate / 2.0)).await;
        child.kill9();
        super::clock::now_us()
    };
    let (published2, killed_us) = futures::join!(publish, crash);
    let published2 = published2?;
    let crash_tally = settle(&receiver.ledger, 0..1, n..n + n2, d.stall).await;
    let held: Vec<u64> = receiver
        .ledger
        .sent_and_arrived(0..1, n..n + n2)
        .into_iter()
        .filter(|&(sent, at)| sent < killed_us && at > killed_us + 1_000_000)
        .map(|(_, at)| at)
        .collect();
    let redelivery_s = held
        .iter()
        .max()
        .map_or(0.0, |at| (at - killed_us) as f64 / 1e6);
    for w in workers {
        w.stop(STOP_WAIT).await;
    }

    report.set("nodes", 3);
    report.set("workers", 3);
    report.set("replicas", 3);
    report.set("events", n);
    report.set("rate_per_s", rate);
    report.set("killed", "stream leader");
    report.set("killed_after_s", round(kill_after.as_secs_f64(), 1));
    report.set("delivered", tally.delivered);
    report.set("lost", tally.lost);
    report.set("duplicated", tally.duplicated);
    report.set("pause_ms", round(pause_us as f64 / 1000.0, 1));
    report.set("p99_ms", tally.percentile_ms(99.0));
    report.set("worker_shares", shares);
    report.set(
        "ack_wait_s",
        decnet_webhook::bus::durable::ACK_WAIT.as_secs_f64(),
    );
    report.set("crash_events", n2);
    report.set("crash_lost", crash_tally.lost);
    report.set("crash_duplicated", crash_tally.duplicated);
    report.set("crash_redelivered", held.len());
    report.set("crash_redelivery_s", round(redelivery_s, 2));
    report.check("cluster published", n as u64, published.count as u64);
    report.check("cluster delivered", n as u64, tally.delivered);
    report.check("crash published", n2 as u64, published2.count as u64);
    report.check("crash delivered", n2 as u64, crash_tally.delivered);
    report.check("cluster stray requests", 0, stray(&receiver));
    Ok(())
}

/// Wait until `at_least` pull requests wait on the consumer (every worker pulls).
async fn wait_pulling(
    client: &async_nats::Client,
    stream: &str,
    consumer: &str,
    at_least: usize,
) -> Result<(), BenchError> {
    let js = async_nats::jetstream::new(client.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(s) = js.get_stream(stream).await {
            if let Ok(info) = s.consumer_info(consumer).await {
                if info.num_waiting >= at_least {
                    return Ok(());
                }
            }
        }
        if Instant::now() > deadline {
            return Err(BenchError(format!(
                "fewer than {at_least} workers pull from {consumer}"
            )));
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A burst at the default settings to one subscription on a healthy receiver, the
/// worker in a process of its own as `decnet webhook` runs: what it delivers and
/// dead-letters, its memory idle, at the burst's peak and after the queue drained,
/// and its own CPU per delivery (beside the whole machine's).
async fn burst(d: &Dims, report: &mut Report) -> Result<(), BenchError> {
    const SUBJECT: &str = "bench.burst";
    let n = d.burst_events;
    let rig = Rig::new(&[]).await?;
    let receiver = Receiver::start(Ledger::new(1, n + PROBES))?;
    let uuids = rig.insert(&subs(&receiver, 1, SUBJECT)).await?;
    let uuid = uuids
        .first()
        .ok_or_else(|| BenchError("no subscription inserted".into()))?;
    let child = child_worker(&rig, &uuids, SUBJECT, &receiver, n..n + PROBES).await?;
    let pid = child.pid();
    // Idle: started, one subscription consuming, nothing queued.
    actix_rt::time::sleep(Duration::from_secs(2)).await;
    let rss_idle = rss_mib_of(pid);
    let (cpu0, machine0) = (cpu_s_of(pid), CpuMeter::now());
    let peak = std::sync::Arc::new(std::sync::Mutex::new(rss_idle.unwrap_or(0.0)));
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        actix_rt::spawn(async move {
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                if let (Some(now), Ok(mut p)) = (rss_mib_of(pid), peak.lock()) {
                    *p = p.max(now);
                }
                actix_rt::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let t0 = Instant::now();
    let published = publisher::publish(
        rig.url(),
        Plan {
            subject: SUBJECT.into(),
            seqs: 0..n,
            rate: None,
        },
    )
    .await?;
    let tally = settle(&receiver.ledger, 0..1, 0..n, d.stall).await;
    let drained = t0.elapsed();
    let (cpu1, machine) = (cpu_s_of(pid), cpu_since(machine0));
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let _ = sampler.await;
    // Memory given back: RSS within 25 % of idle, read every 100 ms for 10 s.
    let back_at = Instant::now();
    let mut rss_after = rss_mib_of(pid);
    let mut back_s = None;
    while back_at.elapsed() < Duration::from_secs(10) {
        rss_after = rss_mib_of(pid);
        if let (Some(after), Some(idle)) = (rss_after, rss_idle) {
            if after <= idle * 1.25 {
                back_s = Some(round(back_at.elapsed().as_secs_f64(), 1));
                break;
            }
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    let dead = decnet_webhook::db::dead_letters::list(&rig.db, uuid, 1, 0)
        .await
        .map(|(_, total)| total)
        .map_err(|e| BenchError::setup("dead letters", e))?;
    drop(child);
    let delivered = tally.delivered;
    let dropped = (n as u64).saturating_sub(delivered + dead);
    report.set("events", n);
    report.set("delivered", delivered);
    report.set("dead_lettered", dead);
    report.set("dropped", dropped);
    report.set("duplicated", tally.duplicated);
    report.set("publish_s", secs(published.elapsed));
    report.set("drain_s", secs(drained));
    report.set(
        "deliveries_per_s",
        (delivered as f64 / drained.as_secs_f64().max(1e-9)).round(),
    );
    report.set("rss_idle_mib", rss_idle);
    report.set("rss_peak_mib", peak.lock().map(|p| *p).unwrap_or(0.0));
    report.set("rss_after_mib", rss_after);
    report.set("rss_back_within_25pct_s", back_s);
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        report.set(
            "worker_cpu_us_per_delivery",
            round((b - a) * 1e6 / delivered.max(1) as f64, 1),
        );
    }
    cpu_cost(report, machine, delivered);
    report.check("burst published", n as u64, published.count as u64);
    report.check("burst delivered", n as u64, delivered);
    report.check("burst dead-lettered", 0, dead);
    report.check("burst duplicates", 0, tally.duplicated);
    Ok(())
}
