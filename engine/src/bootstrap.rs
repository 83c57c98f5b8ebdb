//! The bootstrap: starts the executors (one pinned per data core, one for the control plane) and
//! wires the layers into them: the server's listeners and the relay links on every data core,
//! the control API on the control core. Everything below it (`runtime`, `delivery`, `registry`,
//! …) is started from here and never reaches back up.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use glommio::{LocalExecutorBuilder, Placement as GlommioPlacement};
use tracing::{error, info};

use crate::cluster::{Cluster, Load, Settings};
use crate::config::Snapshot;
use crate::relay::Relays;
use crate::runtime::{
    allowed_cpus, build_mesh, os_signal, rlimit, ControlLink, Core, CoreId, CoreMessage, Limit,
    LimitHits, MeshEnds, Placement, Reply, StartError,
};

/// Memory each executor registers with io_uring up front. glommio's default (10 MiB) is sized for
/// DMA file I/O, which the relay does not do; sockets read into our own buffers.
const IO_MEMORY: usize = 256 * 1024;

/// How long data cores give their clients to say goodbye before the executors stop.
const DRAIN_TIME: Duration = Duration::from_millis(1200);

/// Runs the engine until SIGINT or SIGTERM; returns once every executor has stopped.
pub fn run(snapshot: Arc<Snapshot>) -> Result<(), StartError> {
    let config = &snapshot.config;
    let placement = Placement::plan(config.cores, &allowed_cpus())?;
    // A listener bound without SO_REUSEPORT fails if anything already owns the port, even another
    // process with SO_REUSEPORT, which would otherwise silently share our connections.
    if config.rtmp {
        probe_listen("rtmp", config.rtmp_address.0)?;
    }
    for http in config.http_listeners() {
        probe_listen("http", http.0)?;
    }
    if config.api {
        probe_listen("api", config.api_address.0)?;
    }
    if config.metrics {
        probe_listen("metrics", config.metrics_address.0)?;
    }
    if config.playback {
        probe_listen("playback", config.playback_address.0)?;
    }
    // Before any core writes: a crash can only have left each path's newest segment torn.
    for (file, repair) in crate::record::store::repair_newest(config) {
        tracing::warn!(file = %file.display(), ?repair, "recording segment left unfinished by a crash: cut back to its last whole part");
    }
    os_signal::block_termination_signals().map_err(StartError::Signals)?;
    match rlimit::raise_nofile() {
        Ok(l) => tracing::info!(
            soft_before = l.soft_before,
            soft = l.soft,
            hard = l.hard,
            "descriptor limit (RLIMIT_NOFILE)"
        ),
        Err(e) => tracing::warn!("cannot raise the descriptor limit: {e}"),
    }

    // The cluster thread (Redis) runs before the cores, which hold its handle.
    let (cluster, cluster_thread) = match &config.cluster {
        Some(conf) => {
            let settings = Settings::from_conf(conf).map_err(StartError::Cluster)?;
            let (cluster, thread) = crate::cluster::start(settings)
                .map_err(|e| StartError::Cluster(format!("cannot start its thread: {e}")))?;
            (Some(cluster), Some(thread))
        }
        None => (None, None),
    };

    let data_cores = placement.data_cpus.len();
    let stop = Arc::new(AtomicBool::new(false));
    let exited = Arc::new(AtomicUsize::new(0));
    let (ready_tx, ready_rx) = mpsc::channel::<Result<CoreId, StartError>>();
    let mut ends = build_mesh(data_cores + 1).into_iter();
    let mut handles = Vec::new();

    for (i, &cpu) in placement.data_cpus.iter().enumerate() {
        let mesh = ends.next().expect("one mesh end per executor");
        let snapshot = snapshot.clone();
        let ready = ready_tx.clone();
        let exited = exited.clone();
        let cluster = cluster.clone();
        let handle = LocalExecutorBuilder::new(GlommioPlacement::Fixed(cpu))
            .name(&format!("data-{i}"))
            .io_memory(IO_MEMORY)
            .spawn(move || async move {
                data_core(CoreId(i as u16), data_cores, snapshot, mesh, ready, cluster).await;
                exited.fetch_add(1, Ordering::SeqCst);
            })
            .map_err(|e| StartError::Executor {
                core: i as u16,
                cpu,
                reason: e.to_string(),
            })?;
        handles.push(handle);
    }
    let control_mesh = ends.next().expect("the control executor's mesh end");
    let control_stop = stop.clone();
    let control_snapshot = snapshot.clone();
    let control_ready = ready_tx.clone();
    let control_cluster = cluster.clone();
    let control = LocalExecutorBuilder::new(GlommioPlacement::Fixed(placement.control_cpu))
        .name("control")
        .io_memory(IO_MEMORY)
        .spawn(move || {
            control_core(
                data_cores,
                control_snapshot,
                control_mesh,
                control_stop,
                control_ready,
                control_cluster,
            )
        })
        .map_err(|e| StartError::Executor {
            core: data_cores as u16,
            cpu: placement.control_cpu,
            reason: e.to_string(),
        })?;
    drop(ready_tx);

    let mut started = 0;
    let mut failure = None;
    // Every data core and the control core report in.
    while started < data_cores + 1 {
        match ready_rx.recv() {
            Ok(Ok(_)) => started += 1,
            Ok(Err(e)) => {
                failure = Some(e);
                break;
            }
            Err(_) => break,
        }
    }
    if failure.is_none() && started == data_cores + 1 {
        let rtmp = if config.rtmp {
            config.rtmp_address.to_string()
        } else {
            "off (rtmp: false)".to_owned()
        };
        let http: Vec<String> = config
            .http_listeners()
            .iter()
            .map(ToString::to_string)
            .collect();
        info!(
            rtmp = %rtmp,
            http = %http.join(","),
            hls = config.hls,
            data_cpus = ?placement.data_cpus,
            control_cpu = placement.control_cpu,
            control_shared = placement.control_shared,
            "corestream ready"
        );
        loop {
            if let Some(sig) = os_signal::wait_for_termination(Duration::from_millis(200)) {
                info!(signal = sig, "stopping");
                break;
            }
            if exited.load(Ordering::SeqCst) > 0 {
                error!("a data core stopped unexpectedly; stopping");
                break;
            }
        }
    }
    stop.store(true, Ordering::SeqCst);
    for h in handles {
        if let Err(e) = h.join() {
            error!("a data core ended with an error: {e}");
        }
    }
    if let Err(e) = control.join() {
        error!("the control core ended with an error: {e}");
    }
    // Last: this node's directory entries go once its streams have ended.
    if let Some(thread) = cluster_thread {
        thread.stop();
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// How long start-up waits for a port still held by a process that just exited: io_uring releases
/// a dead process's sockets shortly after it is reaped, so a quick restart would otherwise fail.
const PORT_RELEASE_WAIT: Duration = Duration::from_secs(3);

fn probe_listen(what: &'static str, addr: SocketAddr) -> Result<(), StartError> {
    let deadline = std::time::Instant::now() + PORT_RELEASE_WAIT;
    loop {
        match StdListener::bind(addr) {
            Ok(_) => return Ok(()),
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(reason) => return Err(StartError::Listen { what, addr, reason }),
        }
    }
}

async fn data_core(
    id: CoreId,
    data_cores: usize,
    snapshot: Arc<Snapshot>,
    mesh: MeshEnds,
    ready: mpsc::Sender<Result<CoreId, StartError>>,
    cluster: Option<Cluster>,
) {
    let rtmp_addr = snapshot.config.rtmp_address.0;
    let rtmp = snapshot
        .config
        .rtmp
        .then(|| {
            crate::server::net::listen(rtmp_addr).map_err(|reason| StartError::Listen {
                what: "rtmp",
                addr: rtmp_addr,
                reason,
            })
        })
        .transpose();
    // httpAddress, and hlsAddress when it is another port: the same HTTP service on each.
    let http: Result<Vec<_>, _> = snapshot
        .config
        .http_listeners()
        .into_iter()
        .map(|addr| {
            crate::server::net::listen(addr.0).map_err(|reason| StartError::Listen {
                what: "http",
                addr: addr.0,
                reason,
            })
        })
        .collect();
    let (mesh, receivers) = mesh.connect().await;
    let relays = Relays::new(cluster.clone());
    let core = Core::new(id, data_cores, snapshot, mesh, relays.clone(), cluster);
    for (from, rx) in receivers {
        let core = core.clone();
        glommio::spawn_local(async move {
            while let Some(msg) = rx.recv().await {
                core.handle(from, msg);
            }
        })
        .detach();
    }
    let (rtmp, http) = match (rtmp, http) {
        (Ok(r), Ok(h)) => (r, h),
        (Err(e), _) | (_, Err(e)) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(id));
    glommio::spawn_local(core.flusher().clone().run()).detach();
    let upkeep = glommio::spawn_local(upkeep(core.clone(), relays));
    let http: Vec<_> = http
        .into_iter()
        .map(|listener| glommio::spawn_local(crate::server::serve_http(core.clone(), listener)))
        .collect();
    if let Some(rtmp) = rtmp {
        crate::server::serve_rtmp(core.clone(), rtmp).await;
    }
    for listener in http {
        listener.await;
    }
    upkeep.await;
    drain(&core).await;
    log_stats(&core);
}

/// Periodic per-core housekeeping until shutdown.
async fn upkeep(core: Rc<Core>, relays: Rc<Relays>) {
    // Static pull sources start with the configuration.
    relays.reconcile(&core);
    let mut lost_cursor = 0;
    while !core.shutdown_signal().is_fired() {
        core.hls_tick();
        relays.tick(&core, std::time::Instant::now());
        // Streams another cluster node took over: their publishers here stop.
        if let Some(cluster) = core.cluster() {
            let (lost, cursor) = cluster.lost_since(lost_cursor);
            lost_cursor = cursor;
            if !lost.is_empty() {
                core.stop_publishers_of(&lost);
            }
        }
        let tick = glommio::timer::sleep(Duration::from_millis(250));
        futures_lite::future::or(tick, core.shutdown_signal().wait()).await;
    }
}

/// Gives open connections up to [`DRAIN_TIME`] to send their goodbyes and close.
async fn drain(core: &Rc<Core>) {
    let deadline = std::time::Instant::now() + DRAIN_TIME;
    while core.open_sessions() > 0 && std::time::Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(20)).await;
    }
    // The recordings of the streams that just ended finish their segments.
    while crate::record::writer::writers_running() > 0 && std::time::Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(20)).await;
    }
}

fn log_stats(core: &Core) {
    let s = core.stats();
    info!(
        core = s.core,
        connections = s.connections_accepted,
        frames_published = s.frames_published,
        frames_forwarded = s.frames_forwarded,
        frames_from_remote = s.frames_from_remote,
        frames_lost_remote = s.frames_lost_remote,
        players_too_slow = s.players_too_slow,
        bytes_sent = s.bytes_sent,
        socket_writes = s.socket_writes,
        limit_hits = %limit_summary(&s.limit_hits),
        "core stopped"
    );
}

/// `key=count` for every limit hit at least once, or `none`.
fn limit_summary(hits: &LimitHits) -> String {
    let parts: Vec<String> = Limit::ALL
        .into_iter()
        .filter(|l| hits.get(*l) > 0)
        .map(|l| format!("{}={}", l.key(), hits.get(l)))
        .collect();
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(",")
    }
}

/// The control executor: serves the control API and metrics (see `api/`), reaching the data cores
/// only through the mesh, and tells them to stop.
async fn control_core(
    data_cores: usize,
    snapshot: Arc<Snapshot>,
    mesh: MeshEnds,
    stop: Arc<AtomicBool>,
    ready: mpsc::Sender<Result<CoreId, StartError>>,
    cluster: Option<Cluster>,
) {
    let (mesh, receivers) = mesh.connect().await;
    let link = ControlLink::new(CoreId(data_cores as u16), data_cores, mesh);
    for (_, rx) in receivers {
        let link = link.clone();
        glommio::spawn_local(async move {
            while let Some(msg) = rx.recv().await {
                link.handle(msg);
            }
        })
        .detach();
    }
    let started = crate::api::start(link.clone(), snapshot, cluster.clone());
    let _ = ready.send(started.map(|()| link.id));
    if let Some(cluster) = cluster {
        glommio::spawn_local(report_load(link.clone(), cluster, stop.clone())).detach();
    }
    while !stop.load(Ordering::SeqCst) {
        glommio::timer::sleep(Duration::from_millis(50)).await;
    }
    link.shutdown();
    // Let the reliable sends leave before the executor stops.
    glommio::timer::sleep(Duration::from_millis(20)).await;
}

/// Every third of the cluster's `ttl`: this node's streams, players and outbound bit rate,
/// gathered from the data cores and handed to the cluster thread for its next heartbeat.
async fn report_load(link: Rc<ControlLink>, cluster: Cluster, stop: Arc<AtomicBool>) {
    let period = cluster.settings.ttl / 3;
    let mut last: Option<(std::time::Instant, u64)> = None;
    while !stop.load(Ordering::SeqCst) {
        let answers = link
            .scatter(|reply| CoreMessage::GatherStats { reply })
            .await;
        let stats: Vec<_> = answers
            .into_iter()
            .filter_map(|a| match a {
                Some(Reply::Stats(s)) => Some(s),
                _ => None,
            })
            .collect();
        let bytes: u64 = stats.iter().map(|s| s.bytes_sent).sum();
        let now = std::time::Instant::now();
        let outbound_bitrate = match last {
            Some((at, before)) => {
                let secs = now.duration_since(at).as_secs_f64().max(0.001);
                (bytes.saturating_sub(before) as f64 * 8.0 / secs) as u64
            }
            None => 0,
        };
        last = Some((now, bytes));
        cluster.report_load(Load {
            streams: stats.iter().map(|s| s.streams_owned).sum(),
            players: stats
                .iter()
                .map(|s| s.players_local + s.players_remote)
                .sum(),
            outbound_bitrate,
        });
        glommio::timer::sleep(period).await;
    }
}
