//! Runs one system: warm-up, then the measured phase (closed or open loop), recording every operation's
//! latency in HdrHistograms; then verifies that every acknowledged write is in the database.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::ProgressBar;

use crate::acklog::AckLog;
use crate::systems::{System, row_id};
use crate::workload::{Call, Op, Shape, T0, flow};

/// Latencies and counts of one operation.
pub(crate) struct OpStats {
    pub hist: Histogram<u64>,
    pub errors: u64,
}

/// Everything recorded for one system.
pub(crate) struct Recorder {
    pub ops: Vec<Mutex<OpStats>>,
    /// Incoming messages completed per second of the measured phase.
    pub per_second: Vec<AtomicU64>,
    pub measuring: AtomicBool,
    pub messages: AtomicU64,
    /// Acknowledged inserts (warm-up included): messages, model calls, actions.
    pub acked: [AtomicU64; 3],
    pub first_error: Mutex<Option<String>>,
    pub started: Mutex<Option<Instant>>,
    /// Read keys seen so far (warm-up included), and the measured reads of keys already seen: (reads, hits).
    pub seen: Mutex<std::collections::HashSet<String>>,
    pub repeats: [AtomicU64; 2],
    /// Whole messages: from arrival (open loop: the scheduled time) to the last write's acknowledgement.
    pub message_hist: Mutex<Histogram<u64>>,
    /// botdb's acknowledged writes, recorded outside the process (`--ack-log`).
    pub ack_log: Option<AckLog>,
}

impl Recorder {
    fn new(ack_log: Option<AckLog>) -> Self {
        Recorder {
            ack_log,
            ops: Op::ALL
                .iter()
                .map(|_| Mutex::new(OpStats { hist: Histogram::new(3).expect("histogram"), errors: 0 }))
                .collect(),
            per_second: (0..3600).map(|_| AtomicU64::new(0)).collect(),
            measuring: AtomicBool::new(false),
            seen: Mutex::default(),
            repeats: [AtomicU64::new(0), AtomicU64::new(0)],
            message_hist: Mutex::new(Histogram::new(3).expect("histogram")),
            messages: AtomicU64::new(0),
            acked: Default::default(),
            first_error: Mutex::new(None),
            started: Mutex::new(None),
        }
    }

    fn record(&self, op: Op, took: Duration, ok: bool) {
        if !self.measuring.load(Ordering::Relaxed) {
            return;
        }
        let i = Op::ALL.iter().position(|o| *o == op).unwrap_or(0);
        let mut s = self.ops[i].lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if ok {
            let _ = s.hist.record((took.as_micros() as u64).max(1));
        } else {
            s.errors += 1;
        }
    }
}

/// How the measured phase drives load.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Load {
    pub rate: f64,
    pub concurrency: usize,
    /// botdb submits a message's writes and awaits their tickets at the end of the message.
    pub pipeline: bool,
    pub warmup: Duration,
    pub duration: Duration,
}

impl Recorder {
    /// Counts an acknowledged insert, or keeps the first error.
    fn outcome<T>(&self, call: &Call, res: &Result<T, String>) {
        match res {
            Ok(_) => match call {
                Call::InsertMessage(_) => drop(self.acked[0].fetch_add(1, Ordering::Relaxed)),
                Call::InsertUsage(_) => drop(self.acked[1].fetch_add(1, Ordering::Relaxed)),
                Call::InsertAction(_) => drop(self.acked[2].fetch_add(1, Ordering::Relaxed)),
                _ => {}
            },
            Err(e) => self.error(&format!("{}: {e}", call.op().name())),
        }
    }

    fn error(&self, e: &str) {
        let mut first = self.first_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if first.is_none() {
            *first = Some(e.to_owned());
        }
    }
}

/// The checks of one message's acknowledged writes, for the ack log (a no-op without one).
struct Acks<'r> {
    log: Option<&'r AckLog>,
    checks: Vec<serde_json::Value>,
    created: std::collections::HashMap<String, i64>,
}

impl Acks<'_> {
    fn acked(&mut self, calls: &[Call], k: usize, id: Option<i64>) {
        if let Some(check) = self.log.and_then(|log| log.check(calls, k, id, &mut self.created)) {
            self.checks.push(check);
        }
    }

    fn write(self, rec: &Recorder) {
        if let Some(Err(e)) = self.log.map(|log| log.append(&self.checks)) {
            rec.error(&format!("ack log: {e}"));
        }
    }
}

async fn run_flow(sys: &System, rec: &Recorder, shape: &Shape, n: u64, scheduled: Option<Instant>, pipeline: bool) {
    let mut rng = fastrand::Rng::with_seed(shape.seed ^ n.wrapping_mul(0x2545_F491_4F6C_DD1D));
    let now = T0 + n as f64 * 1e-3;
    let (calls, _, _) = flow(shape, n, now, &mut rng);
    let sys = &sys.for_message();
    let arrived = scheduled.unwrap_or_else(Instant::now);
    // Writes submitted, not yet acknowledged: (call's index, timed ticket).
    let mut pending = Vec::new();
    let mut acks = Acks { log: rec.ack_log.as_ref(), checks: Vec::new(), created: Default::default() };
    for (k, call) in calls.iter().enumerate() {
        let start = Instant::now();
        // In open loop the first call is timed from the message's scheduled arrival.
        let from = if k == 0 { scheduled.unwrap_or(start) } else { start };
        if pipeline && call.op().is_write() {
            match sys.submit(call).await {
                Ok(Some(ticket)) => {
                    // Timed to the moment the write is acknowledged, not to when the handler gets to it.
                    let watch = tokio::spawn(async move { (ticket.await, from.elapsed()) });
                    pending.push((k, watch));
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    rec.outcome(call, &Err::<(), _>(e));
                    rec.record(call.op(), from.elapsed(), false);
                    continue;
                }
            }
        }
        let loads = sys.loads();
        let res = sys.run(call).await;
        if let (Some(key), Some(before), Some(after)) = (call.read_key(), loads, sys.loads()) {
            let repeat = !rec.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key);
            if repeat && rec.measuring.load(Ordering::Relaxed) {
                rec.repeats[0].fetch_add(1, Ordering::Relaxed);
                if after == before {
                    rec.repeats[1].fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        rec.outcome(call, &res);
        rec.record(call.op(), from.elapsed(), res.is_ok());
        if let Ok(id) = res
            && call.op().is_write()
        {
            acks.acked(&calls, k, id);
        }
    }
    // The message is handled when every one of its writes is acknowledged (committed); a write's latency
    // runs from its submission to its acknowledgement.
    for (k, watch) in pending {
        let call = &calls[k];
        let (res, took) = match watch.await {
            Ok((r, took)) => (r.map(|o| o.into_row().as_ref().and_then(row_id)).map_err(|e| e.to_string()), took),
            Err(e) => (Err(e.to_string()), Duration::ZERO),
        };
        rec.outcome(call, &res);
        rec.record(call.op(), took, res.is_ok());
        if let Ok(id) = res {
            acks.acked(&calls, k, id);
        }
    }
    acks.write(rec);
    if rec.measuring.load(Ordering::Relaxed) {
        let took = (arrived.elapsed().as_micros() as u64).max(1);
        let _ = rec.message_hist.lock().unwrap_or_else(std::sync::PoisonError::into_inner).record(took);
        rec.messages.fetch_add(1, Ordering::Relaxed);
        let started = *rec.started.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(s) = started {
            let sec = (s.elapsed().as_secs() as usize).min(3599);
            rec.per_second[sec].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Runs the load; returns the recorder and the measured wall time.
pub(crate) async fn run(
    sys: System,
    shape: Shape,
    load: Load,
    bar: ProgressBar,
    ack_log: Option<AckLog>,
) -> (Arc<Recorder>, Duration) {
    let rec = Arc::new(Recorder::new(ack_log));
    let counter = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let total = load.warmup + load.duration;
    let begin = Instant::now();
    let mut tasks = Vec::new();
    if load.rate > 0.0 {
        let (sys, rec, counter, stop) = (sys.clone(), rec.clone(), counter.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let interval = Duration::from_secs_f64(1.0 / load.rate);
            let mut flows = Vec::new();
            let start = tokio::time::Instant::now();
            for i in 0u64.. {
                let at = start + interval.mul_f64(i as f64);
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                tokio::time::sleep_until(at).await;
                let (sys, rec) = (sys.clone(), rec.clone());
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let scheduled = at.into_std();
                flows.push(tokio::spawn(async move {
                    run_flow(&sys, &rec, &shape, n, Some(scheduled), load.pipeline).await
                }));
                if flows.len() > 4096 {
                    flows.retain(|f: &tokio::task::JoinHandle<()>| !f.is_finished());
                }
            }
            for f in flows {
                let _ = f.await;
            }
        }));
    } else {
        for _ in 0..load.concurrency.max(1) {
            let (sys, rec, counter, stop) = (sys.clone(), rec.clone(), counter.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    run_flow(&sys, &rec, &shape, n, None, load.pipeline).await;
                }
            }));
        }
    }
    // The periodic statistics scan: once, mid-run.
    {
        let (sys, rec) = (sys.clone(), rec.clone());
        let at = load.warmup + load.duration / 2;
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(at).await;
            let start = Instant::now();
            let res = sys.run(&Call::StatsScan(T0 - 1e5)).await;
            rec.record(Op::StatsScan, start.elapsed(), res.is_ok());
        }));
    }
    tokio::time::sleep(load.warmup).await;
    *rec.started.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
    rec.measuring.store(true, Ordering::Relaxed);
    let measured_from = Instant::now();
    while begin.elapsed() < total {
        bar.set_position(begin.elapsed().as_millis() as u64);
        bar.set_message(format!("{} messages", rec.messages.load(Ordering::Relaxed)));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rec.measuring.store(false, Ordering::Relaxed);
    let measured = measured_from.elapsed();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    bar.finish_and_clear();
    (rec, measured)
}

/// The process's resident set size now, in MB (Linux).
pub(crate) fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Samples the resident set size every 100 ms while a system runs; [`PeakRss::stop`] gives the peak in MB.
pub(crate) struct PeakRss {
    peak: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl PeakRss {
    pub(crate) fn start() -> PeakRss {
        let peak = Arc::new(AtomicU64::new(0));
        let p = peak.clone();
        let task = tokio::spawn(async move {
            loop {
                p.fetch_max((rss_mb() * 1024.0) as u64, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        PeakRss { peak, task }
    }

    pub(crate) fn stop(self) -> f64 {
        self.task.abort();
        self.peak.load(Ordering::Relaxed) as f64 / 1024.0
    }
}
