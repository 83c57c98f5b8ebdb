//! `corestream`: the relay engine's command line.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand, ValueEnum};
use corestream::auth::{sign_url, Action, AuthRequest, RequestTarget};
use corestream::config::{Config, Snapshot};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::EnvFilter;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "corestream",
    version,
    about = "Thread-per-core live-stream relay engine"
)]
struct Cli {
    /// Configuration file (YAML; Corestream's or MediaMTX's). Without it the first of
    /// corestream.yml and mediamtx.yml found in the working directory, /usr/local/etc,
    /// /usr/etc, /etc/corestream and /etc/mediamtx is used, else the embedded default
    /// (config/corestream.yaml).
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine (the default).
    Run,
    /// Load and validate the configuration and its domain files; exit 0, or 2 with every error.
    CheckConfig,
    /// Authentication tools.
    #[command(subcommand)]
    Auth(AuthCommand),
    /// Print a URL signed with a domain's `url_auth` rule.
    Sign(SignArgs),
    /// Check the engine's ports and the way to a source host (route, bridge overlaps, connect).
    /// Exit 0 when nothing is wrong, 1 otherwise.
    Doctor(DoctorArgs),
}

#[derive(Args)]
struct DoctorArgs {
    /// A source URL (rtmp://…, http://…) or a host (`host` or `host:port`).
    target: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum AuthCommand {
    /// Evaluate every rule for one request and print each value and outcome.
    /// Exit 0 allow, 1 deny, 2 config error.
    Check(CheckArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum CliAction {
    Publish,
    Read,
}

#[derive(Args)]
struct CheckArgs {
    #[arg(long, value_enum)]
    action: CliAction,
    /// The URL as the client sends it (rtmp://…, http://…/x.flv, http://…/x.m3u8).
    #[arg(long)]
    url: String,
    /// The clock, in Unix seconds (signature validity and get_time()); default now.
    #[arg(long)]
    now: Option<u64>,
    /// The client's address.
    #[arg(long, default_value = "127.0.0.1")]
    ip: IpAddr,
    /// A request header, `Name: value` (repeatable).
    #[arg(long = "header")]
    headers: Vec<String>,
    /// User name (RTMP: the `user` query parameter; HTTP: Basic auth).
    #[arg(long)]
    user: Option<String>,
    /// Password.
    #[arg(long)]
    pass: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum KeyChoice {
    Primary,
    Backup,
}

#[derive(Args)]
struct SignArgs {
    /// The URL to sign; its host names the domain.
    #[arg(long)]
    url: String,
    /// Which of the domain's keys to sign with.
    #[arg(long, value_enum, default_value = "primary")]
    key: KeyChoice,
    /// Signing time in Unix seconds (valid until it plus valid_seconds); default now.
    #[arg(long)]
    timestamp: Option<u64>,
    /// Type A only: the random part.
    #[arg(long, default_value = "0")]
    rand: String,
    /// Type A only: the user id.
    #[arg(long, default_value = "0")]
    uid: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // As MediaMTX finds mediamtx.yml: an explicit --config, else the first file of the search
    // list, else the embedded default.
    let discovered = cli.config.is_none();
    let config_path = cli
        .config
        .clone()
        .or_else(corestream::config::discover::default_file);
    let snapshot = match Config::load(config_path.as_deref())
        .map_err(|e| e.to_string())
        .and_then(|loaded| Snapshot::build(loaded).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("corestream: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(snapshot, discovered),
        Command::CheckConfig => {
            for w in snapshot.auth.warnings() {
                eprintln!("warning: {w}");
            }
            println!("{}: ok", snapshot.source.name());
            print!("{}", snapshot.config.compat_report.to_text());
            ExitCode::SUCCESS
        }
        Command::Auth(AuthCommand::Check(args)) => auth_check(&snapshot, &args),
        Command::Sign(args) => sign(&snapshot, &args),
        Command::Doctor(args) => doctor(&snapshot, &args),
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn auth_check(snapshot: &Snapshot, args: &CheckArgs) -> ExitCode {
    let target = match RequestTarget::parse(&args.url) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("corestream: {e}");
            return ExitCode::from(2);
        }
    };
    let mut headers = Vec::new();
    for h in &args.headers {
        match h.split_once(':') {
            Some((k, v)) => headers.push((k.trim().to_owned(), v.trim().to_owned())),
            None => {
                eprintln!("corestream: --header `{h}` is not `Name: value`");
                return ExitCode::from(2);
            }
        }
    }
    let request = AuthRequest {
        action: match args.action {
            CliAction::Publish => Action::Publish,
            CliAction::Read => Action::Read,
        },
        protocol: target.protocol,
        vhost: &target.vhost,
        app: &target.app,
        stream: &target.stream,
        query: &target.query,
        headers: &headers,
        peer: args.ip,
        user: args.user.as_deref(),
        pass: args.pass.as_deref(),
        now_unix: args.now.unwrap_or_else(unix_now),
    };
    print!("{}", snapshot.auth.explain(&request));
    match snapshot.auth.check(&request) {
        Ok(()) => {
            println!("allow");
            ExitCode::SUCCESS
        }
        Err(denied) => {
            println!("deny: {denied}");
            ExitCode::from(1)
        }
    }
}

fn sign(snapshot: &Snapshot, args: &SignArgs) -> ExitCode {
    let target = match RequestTarget::parse(&args.url) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("corestream: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(rule) = snapshot.auth.url_auth(&target.vhost) else {
        eprintln!(
            "corestream: no domain `{}` with an enabled url_auth rule in the configuration",
            target.vhost
        );
        return ExitCode::from(2);
    };
    let mut rule = rule.clone();
    if let KeyChoice::Backup = args.key {
        match rule.backup_key.clone() {
            Some(k) => rule.primary_key = k,
            None => {
                eprintln!("corestream: domain `{}` has no backup_key", target.vhost);
                return ExitCode::from(2);
            }
        }
    }
    let ts = args.timestamp.unwrap_or_else(unix_now);
    match sign_url(&args.url, &rule, ts, &args.rand, &args.uid) {
        Ok(url) => {
            println!("{url}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("corestream: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(snapshot: Arc<Snapshot>, discovered: bool) -> ExitCode {
    let filter = EnvFilter::try_from_env("CORESTREAM_LOG")
        .unwrap_or_else(|_| EnvFilter::new(snapshot.config.log_level.as_str()));
    // Reloadable, so that a `logLevel` change through the API applies at once.
    let (filter, reload) = tracing_subscriber::reload::Layer::new(filter);
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_target(false),
        )
        .init();
    corestream::runtime::log_level::install(Box::new(move |level| {
        reload
            .reload(EnvFilter::new(level.as_str()))
            .map_err(|e| e.to_string())
    }));
    match (&snapshot.source, discovered) {
        (corestream::config::Source::File(path), true) => tracing::info!(
            config = %path.display(),
            "starting: configuration found at {} (no --config given)",
            path.display()
        ),
        (corestream::config::Source::File(path), false) => {
            tracing::info!(config = %path.display(), "starting: configuration from --config")
        }
        (corestream::config::Source::Embedded, _) => tracing::info!(
            config = %snapshot.source.name(),
            "starting: no configuration file given or found (looked for {}): the embedded default",
            corestream::config::discover::search_list().join(", ")
        ),
    }
    // One line per MediaMTX feature the file asks for that Corestream does not serve.
    for line in snapshot.config.compat_report.not_served_lines() {
        tracing::warn!("{line}");
    }
    for c in &snapshot.config.compat_report.converted {
        tracing::info!("deprecated MediaMTX key converted: {c}");
    }
    if !snapshot.config.compat_report.environment.is_empty() {
        tracing::info!(
            "environment overrides applied: {}",
            snapshot.config.compat_report.environment.join(", ")
        );
    }
    for w in snapshot.auth.warnings() {
        tracing::warn!("{w}");
    }
    match corestream::bootstrap::run(snapshot) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("corestream: {e}");
            ExitCode::FAILURE
        }
    }
}

fn doctor(snapshot: &Snapshot, args: &DoctorArgs) -> ExitCode {
    let report = corestream::doctor::run(&snapshot.config, args.target.as_deref());
    if args.json {
        println!("{:#}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
