//! The glommio driver: one pinned executor per bench core, each running its share of publishers
//! and players. It only moves bytes between sockets and the sans-IO codecs (the engine's RTMP
//! client, [`HttpFlvClient`]) and hands frames to [`PlayerObserver`]; every loop ends at the run's
//! deadline.
#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use corestream::protocol::rtmp::{
    ClientConfig, ClientEvent, ClientMode, ClientSession, SessionError,
};
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use glommio::{LocalExecutorBuilder, Placement};

use crate::args::{Scheme, Target};
use crate::httpflv::{HttpFlvClient, HttpFlvError, HttpFlvEvent};
use crate::slow::{Pacer, SlowPlan};
use crate::source::{FlvFile, FlvLoop, Source, Synthetic, SyntheticSpec};
use crate::stamp::{now_us, Stamper};
use crate::stats::{PlayerObserver, Progress, Stats};

/// Socket reads go into a buffer this large (per connection).
const READ_BUFFER: usize = 32 * 1024;
/// A send more than this late counts as the publisher falling behind.
const BEHIND: Duration = Duration::from_millis(40);
/// Publishers keep going this long after the players' end, so players never see the stream stop.
const PUBLISH_TAIL: Duration = Duration::from_millis(300);
/// Time given to goodbyes after the end; nothing runs past it.
const GRACE: Duration = Duration::from_secs(2);
/// Executors get this long to start before the first connection.
const STARTUP: Duration = Duration::from_millis(100);

/// What publishers send.
#[derive(Debug, Clone)]
pub enum SourceSpec {
    Synthetic(SyntheticSpec),
    File(Arc<FlvFile>),
}

impl SourceSpec {
    fn open(&self) -> Source {
        match self {
            SourceSpec::Synthetic(s) => Source::Synthetic(Box::new(Synthetic::new(*s))),
            SourceSpec::File(f) => Source::File(FlvLoop::new(f.clone())),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PublishPlan {
    pub target: Target,
    pub source: SourceSpec,
}

#[derive(Debug, Clone)]
pub struct PlayPlan {
    pub target: Target,
    pub players_per_stream: usize,
    /// New players per second, over all streams.
    pub ramp_per_s: f64,
    /// When the first player starts, after the publishers.
    pub start_delay: Duration,
    /// Extra players that read slowly, outside every player figure.
    pub slow: Option<SlowPlan>,
}

/// One run: publishers and/or players of `streams` streams for `duration`.
#[derive(Debug, Clone)]
pub struct Plan {
    pub streams: usize,
    pub publish: Option<PublishPlan>,
    pub play: Option<PlayPlan>,
    pub duration: Duration,
    /// CPUs for the bench's executors; `None`: one executor, not pinned.
    pub cores: Option<Vec<usize>>,
    pub late: Duration,
    pub connect_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("cannot start a bench executor on cpu {cpu:?}: {reason}")]
    Executor { cpu: Option<usize>, reason: String },
    #[error("bench executor failed: {0}")]
    Join(String),
}

/// Why a connection did not go the whole run.
#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error("connect to {addr}: {source}")]
    Connect { addr: SocketAddr, source: io::Error },
    #[error("timed out before {0}")]
    Timeout(&'static str),
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("rtmp: {0}")]
    Rtmp(#[from] SessionError),
    #[error("http-flv: {0}")]
    HttpFlv(#[from] HttpFlvError),
    #[error("refused: {0}")]
    Refused(String),
    #[error("server closed the connection")]
    Closed,
}

/// Shared by the tasks of one executor.
struct CoreCtx {
    stats: RefCell<Stats>,
    progress: Arc<Progress>,
    addr_publish: Option<SocketAddr>,
    addr_play: Option<SocketAddr>,
    plan: Plan,
    /// Players stop here.
    end: Instant,
    /// Publishers stop here.
    publish_end: Instant,
    /// Nothing runs past here.
    hard_end: Instant,
}

/// Runs `plan`, calling `tick` about every `tick_every` while it runs (for the progress line and
/// /proc sampling); returns the merged figures and the measured wall time.
pub fn run(
    plan: Plan,
    progress: Arc<Progress>,
    tick_every: Duration,
    mut tick: impl FnMut(Duration),
) -> Result<(Stats, Duration), DriverError> {
    let resolve = |t: &Target| t.resolve().ok();
    let addr_publish = plan.publish.as_ref().and_then(|p| resolve(&p.target));
    let addr_play = plan.play.as_ref().and_then(|p| resolve(&p.target));
    let cpus: Vec<Option<usize>> = match &plan.cores {
        Some(c) => c.iter().copied().map(Some).collect(),
        None => vec![None],
    };
    let start = Instant::now();
    let t0 = start + STARTUP;
    let end = t0 + plan.duration;
    let publish_end = if plan.play.is_some() {
        end + PUBLISH_TAIL
    } else {
        end
    };
    let hard_end = publish_end + GRACE;
    let n = cpus.len();
    let mut handles = Vec::new();
    for (k, cpu) in cpus.iter().copied().enumerate() {
        let plan = plan.clone();
        let progress = progress.clone();
        let placement = match cpu {
            Some(c) => Placement::Fixed(c),
            None => Placement::Unbound,
        };
        let handle = LocalExecutorBuilder::new(placement)
            .name(&format!("bench-{k}"))
            .spawn(move || async move {
                let ctx = Rc::new(CoreCtx {
                    stats: RefCell::new(Stats::default()),
                    progress,
                    addr_publish,
                    addr_play,
                    plan,
                    end,
                    publish_end,
                    hard_end,
                });
                core_main(ctx.clone(), k, n, t0).await;
                Progress::add(&ctx.progress.executors_done, 1);
                let stats = std::mem::take(&mut *ctx.stats.borrow_mut());
                stats
            })
            .map_err(|e| DriverError::Executor {
                cpu,
                reason: e.to_string(),
            })?;
        handles.push(handle);
    }
    let mut last_tick = Instant::now();
    while Progress::get(&progress.executors_done) < n as u64 {
        std::thread::sleep(Duration::from_millis(50));
        if last_tick.elapsed() >= tick_every {
            last_tick = Instant::now();
            tick(start.elapsed());
        }
    }
    let mut total = Stats::default();
    for h in handles {
        let stats = h.join().map_err(|e| DriverError::Join(e.to_string()))?;
        total.merge(&stats);
    }
    Ok((total, t0.elapsed().min(plan.duration + PUBLISH_TAIL)))
}

async fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        glommio::timer::sleep(t - now).await;
    }
}

/// `fut`'s output, or `None` at `deadline`.
async fn until<T>(deadline: Instant, fut: impl Future<Output = T>) -> Option<T> {
    future::or(async { Some(fut.await) }, async {
        sleep_until(deadline).await;
        None
    })
    .await
}

async fn core_main(ctx: Rc<CoreCtx>, k: usize, n: usize, t0: Instant) {
    let plan = &ctx.plan;
    let mut tasks = Vec::new();
    sleep_until(t0).await;
    if let Some(publish) = &plan.publish {
        for i in (k..plan.streams).step_by(n) {
            let ctx = ctx.clone();
            let target = publish.target.clone();
            let source = publish.source.open();
            tasks.push(glommio::spawn_local(async move {
                publisher(ctx, i, target, source).await
            }));
        }
    }
    if let Some((play, slow)) = plan.play.as_ref().and_then(|p| Some((p, p.slow?))) {
        // Slow players start with the first healthy ones, so they are behind for the whole run.
        let first = t0 + play.start_delay;
        for j in (k..slow.players).step_by(n) {
            let ctx = ctx.clone();
            let target = play.target.clone();
            let stream = j % plan.streams;
            tasks.push(glommio::spawn_local(async move {
                sleep_until(first).await;
                slow_player(ctx, j, stream, target, slow.read_bytes_per_s).await
            }));
        }
    }
    if let Some(play) = &plan.play {
        let total = plan.streams * play.players_per_stream;
        let first = t0 + play.start_delay;
        for j in (k..total).step_by(n) {
            let at = first + Duration::from_secs_f64(j as f64 / play.ramp_per_s.max(0.001));
            if at >= ctx.end {
                break;
            }
            sleep_until(at).await;
            let ctx = ctx.clone();
            let target = play.target.clone();
            let stream = j % plan.streams;
            tasks.push(glommio::spawn_local(async move {
                player(ctx, j, stream, target).await
            }));
        }
    }
    for t in tasks {
        t.await;
    }
}

async fn connect(addr: Option<SocketAddr>, timeout: Duration) -> Result<TcpStream, ConnError> {
    let addr = addr.ok_or(ConnError::Refused(
        "cannot resolve the server address".into(),
    ))?;
    let stream = TcpStream::connect_timeout(addr, timeout)
        .await
        .map_err(|e| ConnError::Connect {
            addr,
            source: io::Error::other(e.to_string()),
        })?;
    // Media goes out frame by frame; do not let Nagle hold the tail of one back.
    stream
        .set_nodelay(true)
        .map_err(|e| io::Error::other(e.to_string()))?;
    Ok(stream)
}

/// Writes what the RTMP session has to send; `false` if the deadline passed first.
async fn flush(
    session: &mut ClientSession,
    stream: &mut TcpStream,
    out: &mut BytesMut,
    deadline: Instant,
) -> Result<(), ConnError> {
    if session.poll_transmit(out) {
        let written = until(deadline, stream.write_all(out)).await;
        out.clear();
        match written {
            Some(r) => r?,
            None => return Err(ConnError::Timeout("the end of the run (write)")),
        }
    }
    Ok(())
}

fn rtmp_config(target: &Target, name: &str, mode: ClientMode, seed: u64) -> ClientConfig {
    ClientConfig {
        handshake_seed: seed,
        ..ClientConfig::new(
            target.app.clone(),
            target.tc_url(),
            target.stream_with_query(name),
            mode,
        )
    }
}

/// A refusal or an error status from the server.
fn refusal(event: &ClientEvent) -> Option<String> {
    match event {
        ClientEvent::Status { level, code, .. }
            if level == "error"
                || code.ends_with(".Failed")
                || code.ends_with(".BadName")
                || code.ends_with(".StreamNotFound")
                || code.ends_with(".Rejected") =>
        {
            Some(code.clone())
        }
        _ => None,
    }
}

async fn publisher(ctx: Rc<CoreCtx>, index: usize, target: Target, source: Source) {
    let name = target.stream_name(index, ctx.plan.streams);
    let result = publish(&ctx, index, &target, &name, source).await;
    let mut stats = ctx.stats.borrow_mut();
    match result {
        Ok(true) => {}
        Ok(false) => {
            stats.publishers_ended_early += 1;
            stats.note_error(format!("publisher {name}: server ended the stream early"));
        }
        Err(e) => {
            stats.publishers_failed += 1;
            stats.note_error(format!("publisher {name}: {e}"));
        }
    }
}

/// Publishes until the end; `Ok(false)` if the server stopped the stream first.
async fn publish(
    ctx: &CoreCtx,
    index: usize,
    target: &Target,
    name: &str,
    mut source: Source,
) -> Result<bool, ConnError> {
    let started = Instant::now();
    let setup_deadline = (started + ctx.plan.connect_timeout).min(ctx.publish_end);
    let mut stream = connect(ctx.addr_publish, setup_deadline - started).await?;
    let mut session = ClientSession::new(rtmp_config(
        target,
        name,
        ClientMode::Publish,
        0x5eed_0000 + index as u64,
    ));
    let mut out = BytesMut::new();
    let mut buf = vec![0u8; READ_BUFFER];
    flush(&mut session, &mut stream, &mut out, setup_deadline).await?;
    'setup: loop {
        let n = until(setup_deadline, stream.read(&mut buf))
            .await
            .ok_or(ConnError::Timeout("NetStream.Publish.Start"))??;
        if n == 0 {
            return Err(ConnError::Closed);
        }
        session.handle_input(&buf[..n])?;
        flush(&mut session, &mut stream, &mut out, setup_deadline).await?;
        while let Some(ev) = session.poll_event() {
            if let Some(code) = refusal(&ev) {
                return Err(ConnError::Refused(code));
            }
            if matches!(ev, ClientEvent::PublishStarted { .. }) {
                break 'setup;
            }
        }
    }
    {
        let mut stats = ctx.stats.borrow_mut();
        stats.publishers_started += 1;
        stats
            .publish_connect_us
            .saturating_record(started.elapsed().as_micros().max(1) as u64);
    }
    Progress::add(&ctx.progress.publishers_live, 1);
    let result = publish_media(ctx, index, &mut session, &mut stream, &mut source, &mut buf).await;
    Progress::sub(&ctx.progress.publishers_live, 1);
    if matches!(result, Ok(true)) {
        session.goodbye();
        // A failed goodbye changes nothing: the run is over.
        let _ = flush(&mut session, &mut stream, &mut out, ctx.hard_end).await;
    }
    result
}

async fn publish_media(
    ctx: &CoreCtx,
    index: usize,
    session: &mut ClientSession,
    stream: &mut TcpStream,
    source: &mut Source,
    buf: &mut [u8],
) -> Result<bool, ConnError> {
    let mut stamper = Stamper::new(index as u32);
    let mut out = BytesMut::new();
    let origin = Instant::now();
    let due = |ts: u32| origin + Duration::from_millis(u64::from(ts));
    loop {
        let next = due(source.next_ts());
        if next >= ctx.publish_end {
            return Ok(true);
        }
        if next > Instant::now() {
            // Wait for the next frame, reading whatever the server says meanwhile.
            match until(next, stream.read(buf)).await {
                None => {}
                Some(Ok(0)) => return Ok(false),
                Some(Ok(n)) => {
                    session.handle_input(&buf[..n])?;
                    while let Some(ev) = session.poll_event() {
                        if let Some(code) = refusal(&ev) {
                            return Err(ConnError::Refused(code));
                        }
                    }
                    flush(session, stream, &mut out, ctx.hard_end).await?;
                }
                Some(Err(e)) => return Err(e.into()),
            }
            continue;
        }
        let now = Instant::now();
        if now - next > BEHIND {
            ctx.stats.borrow_mut().sends_behind += 1;
        }
        let now_us = now_us();
        let (mut frames, mut bytes) = (0, 0);
        while due(source.next_ts()) <= now {
            let frame = source.next_frame(&mut stamper, now_us);
            bytes += frame.payload.len() as u64;
            frames += 1;
            session.send_media(&frame);
        }
        {
            let mut stats = ctx.stats.borrow_mut();
            stats.frames_sent += frames;
            stats.bytes_sent += bytes;
        }
        flush(session, stream, &mut out, ctx.hard_end).await?;
    }
}

async fn player(ctx: Rc<CoreCtx>, index: usize, stream_index: usize, target: Target) {
    let started = Instant::now();
    let mut obs = PlayerObserver::new(stream_index as u32, started, now_us(), ctx.plan.late);
    let name = target.stream_name(stream_index, ctx.plan.streams);
    let result = match target.scheme {
        Scheme::Rtmp => play_rtmp(&ctx, index, &target, &name, &mut obs).await,
        Scheme::HttpFlv => play_http(&ctx, &target, &name, &mut obs).await,
    };
    let now = Instant::now();
    let mut stats = ctx.stats.borrow_mut();
    let early = match result {
        Ok(()) => false,
        Err(e) => {
            stats.note_error(format!("player {index} of {name}: {e}"));
            true
        }
    };
    if obs.is_playing() {
        Progress::sub(&ctx.progress.players_live, 1);
    }
    Progress::add(&ctx.progress.players_done, 1);
    obs.finish(now.min(ctx.end), early, &mut stats);
}

/// A player that reads at `rate` bytes per second until the end of the run (or until the server
/// cuts it off). RTMP players answer the handshake and `connect` through the session, then keep
/// feeding it; HTTP-FLV players only read. Nothing it receives reaches the figures.
async fn slow_player(
    ctx: Rc<CoreCtx>,
    index: usize,
    stream_index: usize,
    target: Target,
    rate: u64,
) {
    let slow = &ctx.progress.slow;
    let name = target.stream_name(stream_index, ctx.plan.streams);
    let Ok(mut stream) = connect(ctx.addr_play, ctx.plan.connect_timeout).await else {
        ctx.stats
            .borrow_mut()
            .note_error(format!("slow player {index} of {name}: cannot connect"));
        return;
    };
    Progress::add(&slow.started, 1);
    let mut session = ClientSession::new(rtmp_config(
        &target,
        &name,
        ClientMode::Play,
        0x5104_0000 + index as u64,
    ));
    let mut out = BytesMut::new();
    let opened = match target.scheme {
        Scheme::Rtmp => flush(&mut session, &mut stream, &mut out, ctx.end).await,
        Scheme::HttpFlv => {
            let mut request = BytesMut::new();
            match HttpFlvClient::request(
                &mut request,
                &target.http_path(&name),
                &target.host_header(),
            ) {
                Ok(()) => until(ctx.end, stream.write_all(&request))
                    .await
                    .unwrap_or(Ok(()))
                    .map_err(ConnError::from),
                Err(e) => Err(e.into()),
            }
        }
    };
    if opened.is_err() {
        Progress::add(&slow.cut, 1);
        return;
    }
    let mut pacer = Pacer::new(Instant::now(), rate);
    let mut buf = vec![0u8; 4096];
    loop {
        let now = Instant::now();
        if now >= ctx.end {
            return;
        }
        let wait = pacer.wait_for(now, buf.len() as u64);
        if !wait.is_zero() {
            sleep_until((now + wait).min(ctx.end)).await;
            continue;
        }
        let n = match until(ctx.end, stream.read(&mut buf)).await {
            None => return,
            Some(Ok(n)) if n > 0 => n,
            Some(_) => {
                if Instant::now() < ctx.end {
                    Progress::add(&slow.cut, 1);
                }
                return;
            }
        };
        pacer.consumed(n as u64);
        Progress::add(&slow.bytes_read, n as u64);
        if target.scheme == Scheme::Rtmp {
            if session.handle_input(&buf[..n]).is_err() {
                return;
            }
            while session.poll_event().is_some() {}
            if flush(&mut session, &mut stream, &mut out, ctx.end)
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// One read of a player's socket, unless `timer` (the end of the run) fires first: `Ok(None)`
/// then; otherwise the bytes read, counted for the player and the progress line. A close by the
/// server is an error.
async fn player_read<F: Future<Output = ()>>(
    ctx: &CoreCtx,
    obs: &mut PlayerObserver,
    stream: &mut TcpStream,
    buf: &mut [u8],
    timer: std::pin::Pin<&mut F>,
) -> Result<Option<usize>, ConnError> {
    let read = future::or(async { Some(stream.read(buf).await) }, async {
        timer.await;
        None
    });
    let n = match read.await {
        None => return Ok(None),
        Some(Ok(0)) => return Err(ConnError::Closed),
        Some(Ok(n)) => n,
        Some(Err(e)) => return Err(e.into()),
    };
    obs.on_bytes(n, &mut ctx.stats.borrow_mut());
    Progress::add(&ctx.progress.bytes_received, n as u64);
    Ok(Some(n))
}

/// A player's connection, given up at the connect timeout or the end of the run.
async fn connect_player(ctx: &CoreCtx) -> Result<TcpStream, ConnError> {
    let started = Instant::now();
    let deadline = (started + ctx.plan.connect_timeout).min(ctx.end);
    connect(ctx.addr_play, deadline.saturating_duration_since(started)).await
}

fn on_play_started(ctx: &CoreCtx, obs: &mut PlayerObserver) {
    if !obs.is_playing() {
        obs.on_play_started(Instant::now(), &mut ctx.stats.borrow_mut());
        Progress::add(&ctx.progress.players_live, 1);
    }
}

fn on_media(ctx: &CoreCtx, obs: &mut PlayerObserver, frame: &corestream::media::Frame) {
    let outcome = obs.on_frame(frame, Instant::now(), now_us(), &mut ctx.stats.borrow_mut());
    let p = &ctx.progress;
    Progress::add(&p.frames_received, 1);
    if outcome.lost > 0 {
        Progress::add(&p.frames_lost, outcome.lost);
    }
    if outcome.late {
        Progress::add(&p.frames_late, 1);
    }
    if let Some(l) = outcome.latency_us {
        p.last_latency_us
            .store(l, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Plays over RTMP until the end of the run; `Ok` if it lasted that long.
async fn play_rtmp(
    ctx: &CoreCtx,
    index: usize,
    target: &Target,
    name: &str,
    obs: &mut PlayerObserver,
) -> Result<(), ConnError> {
    let mut stream = connect_player(ctx).await?;
    let mut session = ClientSession::new(rtmp_config(
        target,
        name,
        ClientMode::Play,
        0x91a7_0000 + index as u64,
    ));
    let mut out = BytesMut::new();
    let mut buf = vec![0u8; READ_BUFFER];
    flush(&mut session, &mut stream, &mut out, ctx.end).await?;
    let timer = glommio::timer::sleep(ctx.end.saturating_duration_since(Instant::now()));
    futures_lite::pin!(timer);
    let result = loop {
        let n = match player_read(ctx, obs, &mut stream, &mut buf, timer.as_mut()).await {
            Ok(Some(n)) => n,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        session.handle_input(&buf[..n])?;
        flush(&mut session, &mut stream, &mut out, ctx.end).await?;
        let mut ended = false;
        while let Some(ev) = session.poll_event() {
            match &ev {
                ClientEvent::PlayStarted { .. } => on_play_started(ctx, obs),
                ClientEvent::Media(frame) => on_media(ctx, obs, frame),
                ClientEvent::StreamEof => ended = true,
                _ => {
                    if let Some(code) = refusal(&ev) {
                        return Err(ConnError::Refused(code));
                    }
                }
            }
        }
        if ended {
            break Err(ConnError::Refused("stream ended (StreamEOF)".into()));
        }
    };
    if result.is_ok() {
        session.goodbye();
        let _ = flush(&mut session, &mut stream, &mut out, ctx.hard_end).await;
    }
    result
}

/// Plays over HTTP-FLV until the end of the run.
async fn play_http(
    ctx: &CoreCtx,
    target: &Target,
    name: &str,
    obs: &mut PlayerObserver,
) -> Result<(), ConnError> {
    let mut stream = connect_player(ctx).await?;
    let mut request = BytesMut::new();
    HttpFlvClient::request(&mut request, &target.http_path(name), &target.host_header())?;
    until(ctx.end, stream.write_all(&request))
        .await
        .ok_or(ConnError::Timeout("the request was sent"))??;
    let mut client = HttpFlvClient::new();
    let mut buf = vec![0u8; READ_BUFFER];
    let timer = glommio::timer::sleep(ctx.end.saturating_duration_since(Instant::now()));
    futures_lite::pin!(timer);
    loop {
        let Some(n) = player_read(ctx, obs, &mut stream, &mut buf, timer.as_mut()).await? else {
            return Ok(());
        };
        client.handle_input(&buf[..n])?;
        while let Some(ev) = client.poll_event()? {
            match ev {
                HttpFlvEvent::Started => on_play_started(ctx, obs),
                HttpFlvEvent::Media(frame) => on_media(ctx, obs, &frame),
                HttpFlvEvent::End => return Err(ConnError::Closed),
            }
        }
    }
}
