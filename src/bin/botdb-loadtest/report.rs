//! The report: a terminal table per system, the JSON report (with the plotted series), and three SVG plots
//! named after it (read and write-acknowledgement latency by percentile; incoming messages per second).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use hdrhistogram::Histogram;
use plotters::prelude::*;
use serde::Serialize;

use crate::runner::Recorder;
use crate::workload::Op;

/// Percentiles and mean in µs.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Self {
        let q = |x| if h.is_empty() { 0.0 } else { h.value_at_quantile(x) as f64 };
        let mean = if h.is_empty() { 0.0 } else { h.mean() };
        Latency { p50: q(0.5), p90: q(0.9), p95: q(0.95), p99: q(0.99), p999: q(0.999), max: h.max() as f64, mean }
    }
}

/// What the plots draw, also in the JSON report.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Series {
    /// (percentile, µs) of every read, from p0 to p99.99.
    pub read_latency_us: Vec<(f64, f64)>,
    /// (percentile, µs) of every write's acknowledgement.
    pub write_ack_latency_us: Vec<(f64, f64)>,
    /// Incoming messages handled in each measured second.
    pub messages_per_second: Vec<u64>,
}

/// Points of a latency curve: 161 percentiles evenly spaced in "nines" (p0 … p90 … p99 … p99.99).
fn curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return vec![];
    }
    (0..=160)
        .map(|i| {
            let q = (1.0 - 10f64.powf(-(i as f64) / 40.0)).min(0.9999);
            ((q * 1e6).round() / 1e4, h.value_at_quantile(q).max(1) as f64)
        })
        .collect()
}

/// One operation's figures.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct OpReport {
    pub count: u64,
    pub errors: u64,
    pub p50_us: f64,
    pub p99_us: f64,
}

/// One system's figures (the JSON shape of the issue).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SystemReport {
    pub messages_per_s: f64,
    pub row_writes_per_s: f64,
    pub reads_per_s: f64,
    pub read_latency_us: Latency,
    pub write_ack_latency_us: Latency,
    /// A whole message: from its arrival to the acknowledgement of its last write (what the bot waits for).
    pub message_latency_us: Latency,
    pub errors: u64,
    pub acked_writes: u64,
    pub rows_verified: u64,
    pub lost_writes: u64,
    pub integrity_ok: bool,
    pub cache_hit_ratio: Option<f64>,
    /// Cache hits among measured reads of keys already read in this run (a chat's history is one key).
    pub repeat_hit_ratio: Option<f64>,
    pub batched_write_ratio: Option<f64>,
    pub mean_batch_rows: Option<f64>,
    pub peak_rss_mb: f64,
    pub first_error: Option<String>,
    pub ops: BTreeMap<&'static str, OpReport>,
    pub series: Series,
    #[serde(skip)]
    pub table: Vec<(Op, u64, u64, f64, Latency, f64)>,
}

/// Builds a system's report from its recorder.
pub(crate) fn summarise(rec: &Recorder, measured: Duration) -> SystemReport {
    let secs = measured.as_secs_f64().max(1e-9);
    let mut reads = Histogram::<u64>::new(3).expect("histogram");
    let mut writes = Histogram::<u64>::new(3).expect("histogram");
    let (mut errors, mut n_reads, mut n_writes) = (0, 0, 0);
    let mut ops = BTreeMap::new();
    let mut table = Vec::new();
    for (op, m) in Op::ALL.iter().zip(&rec.ops) {
        let s = m.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = s.hist.len();
        errors += s.errors;
        if op.is_write() {
            writes.add(&s.hist).ok();
            n_writes += count;
        } else {
            reads.add(&s.hist).ok();
            n_reads += count;
        }
        let l = Latency::of(&s.hist);
        let p90 = if s.hist.is_empty() { 0.0 } else { s.hist.value_at_quantile(0.9) as f64 };
        ops.insert(op.name(), OpReport { count, errors: s.errors, p50_us: l.p50, p99_us: l.p99 });
        table.push((*op, count, s.errors, count as f64 / secs, l, p90));
    }
    let messages = rec.messages.load(Ordering::Relaxed);
    let measured_secs = measured.as_secs() as usize;
    SystemReport {
        messages_per_s: messages as f64 / secs,
        row_writes_per_s: n_writes as f64 / secs,
        reads_per_s: n_reads as f64 / secs,
        read_latency_us: Latency::of(&reads),
        write_ack_latency_us: Latency::of(&writes),
        message_latency_us: Latency::of(&rec.message_hist.lock().unwrap_or_else(std::sync::PoisonError::into_inner)),
        errors,
        acked_writes: 0,
        rows_verified: 0,
        lost_writes: 0,
        integrity_ok: false,
        cache_hit_ratio: None,
        repeat_hit_ratio: None,
        batched_write_ratio: None,
        mean_batch_rows: None,
        peak_rss_mb: 0.0,
        first_error: rec.first_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone(),
        ops,
        series: Series {
            read_latency_us: curve(&reads),
            write_ack_latency_us: curve(&writes),
            messages_per_second: rec
                .per_second
                .iter()
                .take(measured_secs.max(1))
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
        },
        table,
    }
}

/// The terminal table of one system.
pub(crate) fn print_table(name: &str, r: &SystemReport) {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(["op", "count", "errors", "ops/s", "p50 µs", "p90 µs", "p95 µs", "p99 µs", "p99.9 µs", "max µs"]);
    for (op, count, errors, rate, l, p90) in &r.table {
        if *count == 0 && *errors == 0 {
            continue;
        }
        t.add_row([
            op.name().to_owned(),
            count.to_string(),
            errors.to_string(),
            format!("{rate:.0}"),
            format!("{:.0}", l.p50),
            format!("{p90:.0}"),
            format!("{:.0}", l.p95),
            format!("{:.0}", l.p99),
            format!("{:.0}", l.p999),
            format!("{:.0}", l.max),
        ]);
    }
    println!(
        "\n{name}: {:.0} messages/s, {:.0} row-writes/s, {:.0} reads/s",
        r.messages_per_s, r.row_writes_per_s, r.reads_per_s
    );
    println!("{t}");
}

/// botdb / baseline per operation, at p50 and p99 (below 1: botdb is faster).
pub(crate) fn print_comparison(botdb: &SystemReport, baseline: &SystemReport) {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header([
        "op",
        "botdb p50 µs",
        "baseline p50 µs",
        "p50 ratio",
        "botdb p99 µs",
        "baseline p99 µs",
        "p99 ratio",
    ]);
    let rows =
        botdb.ops.iter().filter_map(|(op, b)| Some(((*op).to_owned(), (b.p50_us, b.p99_us), baseline.ops.get(op)?)));
    let rows: Vec<_> = rows.map(|(op, b, base)| (op, b, (base.p50_us, base.p99_us))).collect();
    let (m, mb) = (&botdb.message_latency_us, &baseline.message_latency_us);
    let whole = ("(whole message)".to_owned(), (m.p50, m.p99), (mb.p50, mb.p99));
    for (op, b, base) in rows.into_iter().chain([whole]) {
        t.add_row([
            op,
            format!("{:.0}", b.0),
            format!("{:.0}", base.0),
            format!("{:.2}", b.0 / base.0.max(1.0)),
            format!("{:.0}", b.1),
            format!("{:.0}", base.1),
            format!("{:.2}", b.1 / base.1.max(1.0)),
        ]);
    }
    println!("\nbotdb / baseline per operation");
    println!("{t}");
}

/// A percentile's place on a plot's x axis: its "nines" (p90 → 1, p99 → 2, p99.9 → 3).
fn nines(percentile: f64) -> f64 {
    -(1.0 - percentile / 100.0).max(1e-6).log10()
}

/// A round percentile label: 0, 90, 99, 99.9, 99.99.
fn percentile_label(x: f64) -> String {
    let p = format!("{:.2}", 100.0 * (1.0 - 10f64.powf(-x)));
    format!("p{}", p.trim_end_matches('0').trim_end_matches('.'))
}

/// One latency-by-percentile plot; the y axis in ms when the curves pass 1 ms.
fn latency_plot(path: &Path, title: &str, curves: &[(&str, &[(f64, f64)])]) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let max_us = curves.iter().flat_map(|(_, c)| c.iter().map(|p| p.1)).fold(1.0, f64::max);
    let (unit, div) = if max_us > 1000.0 { ("ms", 1000.0) } else { ("µs", 1.0) };
    let (lo, hi) = (1.0 / div, max_us * 1.2 / div);
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{title} by percentile ({unit}, log scale)"), ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..4f64, (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .x_labels(5)
        .x_label_formatter(&|x| percentile_label(*x))
        .y_desc(unit)
        .y_label_formatter(&|y| if *y >= 10.0 { format!("{y:.0}") } else { format!("{y:.2}") })
        .draw()?;
    for ((name, c), colour) in curves.iter().zip([RED, BLUE]) {
        if c.is_empty() {
            continue;
        }
        let pts = c.iter().map(|(p, v)| (nines(*p), v / div));
        chart
            .draw_series(LineSeries::new(pts, colour))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
    }
    chart.configure_series_labels().border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

/// Writes the three SVG plots next to the JSON report, named after it (`<stem>-read-latency.svg`,
/// `<stem>-write-ack-latency.svg`, `<stem>-throughput.svg`); returns their paths.
pub(crate) fn plots(
    json: &Path,
    systems: &[(&str, &SystemReport)],
) -> Result<Vec<std::path::PathBuf>, Box<dyn std::error::Error>> {
    let dir = json.parent().unwrap_or(Path::new("."));
    let stem = json.file_stem().and_then(|s| s.to_str()).unwrap_or("loadtest");
    let named = |what: &str| dir.join(format!("{stem}-{what}.svg"));
    let reads: Vec<(&str, &[(f64, f64)])> =
        systems.iter().map(|(n, r)| (*n, r.series.read_latency_us.as_slice())).collect();
    latency_plot(&named("read-latency"), "read latency", &reads)?;
    let acks: Vec<(&str, &[(f64, f64)])> =
        systems.iter().map(|(n, r)| (*n, r.series.write_ack_latency_us.as_slice())).collect();
    latency_plot(&named("write-ack-latency"), "write acknowledgement latency", &acks)?;
    // Throughput over time.
    let path = named("throughput");
    let root = SVGBackend::new(&path, (900, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let per_second = |r: &SystemReport| r.series.messages_per_second.clone();
    let xmax = systems.iter().map(|(_, r)| per_second(r).len()).max().unwrap_or(1).max(1) as f64;
    let ymax = systems.iter().flat_map(|(_, r)| per_second(r)).max().unwrap_or(1).max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption("incoming messages per second", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..xmax, 0f64..ymax * 1.1)?;
    chart.configure_mesh().x_desc("second of the measured run").y_desc("messages/s").draw()?;
    for ((name, r), c) in systems.iter().zip([RED, BLUE]) {
        let pts = per_second(r).into_iter().enumerate().map(|(i, v)| (i as f64 + 0.5, v as f64));
        chart
            .draw_series(LineSeries::new(pts, c))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c));
    }
    chart.configure_series_labels().border_style(BLACK).draw()?;
    root.present()?;
    Ok(vec![named("read-latency"), named("write-ack-latency"), path.clone()])
}
