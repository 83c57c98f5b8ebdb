//! `corestream doctor [URL|host] [--json]`: what operators otherwise check by hand when a stream
//! does not flow. Whether the engine's ports listen (and on which addresses), which route and
//! interface the kernel would use to reach a source host, whether that host lies inside a
//! container or VM bridge's network (the classic cause of `no route to host`: a camera in
//! 172.17.0.0/16 behind docker0), and what a TCP connect to it answers.
//!
//! Everything comes from `/proc/net/{tcp,tcp6,route}` and `/sys/class/net` ([`procnet`]), read
//! once; the report is plain text for people or JSON for scripts.
#![forbid(unsafe_code)]

pub mod procnet;

use std::fmt::Write;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde_json::{json, Value};

use crate::config::Config;
use crate::relay::error::os_text;
use procnet::{bridge_overlaps, parse_listeners, parse_routes, route_for, BridgeOverlap, Route};

/// How long the connect probe waits (ARP gives up after about 3 s with `no route to host`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One of the engine's listeners.
#[derive(Debug, Clone)]
pub struct PortCheck {
    pub what: &'static str,
    pub configured: SocketAddr,
    /// Listening sockets on that port (any address).
    pub listening: Vec<SocketAddr>,
}

impl PortCheck {
    /// Whether something listens where the engine is configured to.
    pub fn ok(&self) -> bool {
        self.listening.iter().any(|l| {
            l.ip() == self.configured.ip()
                || l.ip().is_unspecified()
                || self.configured.ip().is_unspecified()
        })
    }
}

/// What doctor found about a source host.
#[derive(Debug, Clone, Default)]
pub struct TargetCheck {
    pub input: String,
    pub host: String,
    pub port: u16,
    pub address: Option<IpAddr>,
    pub resolve_error: Option<String>,
    pub route: Option<Route>,
    pub overlaps: Vec<BridgeOverlap>,
    /// `None`: connected; else the system's words.
    pub connect_error: Option<String>,
    pub remedies: Vec<String>,
}

/// What doctor found about the cluster (`cluster:` configured).
#[derive(Debug, Clone)]
pub struct ClusterCheck {
    /// The Redis target, without its password.
    pub redis: String,
    /// `Ok`: who answered; `Err`: why not.
    pub redis_answer: Result<String, String>,
    pub advertise: String,
    /// `None`: the advertise address accepted a TCP connection; else the system's words.
    pub advertise_error: Option<String>,
    /// Advice that is not an error (an advertise address only this machine can reach).
    pub notes: Vec<String>,
}

/// The whole report.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub ports: Vec<PortCheck>,
    pub target: Option<TargetCheck>,
    pub cluster: Option<ClusterCheck>,
    pub problems: Vec<String>,
}

/// Whether Redis answers and the advertise address takes connections.
fn check_cluster(conf: &crate::config::ClusterConf) -> ClusterCheck {
    let redis = crate::config::cluster::redact_url(&conf.redis);
    let redis_answer = match crate::config::RedisTarget::parse(&conf.redis) {
        Ok(target) => crate::cluster::probe(&target),
        Err(e) => Err(e.to_string()),
    };
    let mut notes = Vec::new();
    let advertise_error = match crate::config::cluster::advertise_host_port(&conf.advertise) {
        Ok((host, port)) => {
            let addr = (host.as_str(), port)
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next());
            match addr {
                Some(a) => {
                    if a.ip().is_loopback() || a.ip().is_unspecified() {
                        notes.push(format!(
                            "cluster.advertise {} is {}: only this machine can pull from it",
                            conf.advertise,
                            a.ip()
                        ));
                    }
                    TcpStream::connect_timeout(&a, CONNECT_TIMEOUT)
                        .err()
                        .map(|e| os_text(&e))
                }
                None => Some(format!("cannot resolve {host}")),
            }
        }
        Err(e) => Some(e),
    };
    ClusterCheck {
        redis,
        redis_answer,
        advertise: conf.advertise.clone(),
        advertise_error,
        notes,
    }
}

/// Runs every check against this machine.
pub fn run(config: &Config, target: Option<&str>) -> Report {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let mut listeners = parse_listeners(&read("/proc/net/tcp"));
    listeners.extend(parse_listeners(&read("/proc/net/tcp6")));
    let routes = parse_routes(&read("/proc/net/route"));
    let mut wanted = Vec::new();
    if config.rtmp {
        wanted.push(("rtmp", config.rtmp_address.0));
    }
    // httpAddress, and hlsAddress when it is another listener.
    wanted.extend(config.http_listeners().into_iter().map(|a| ("http", a.0)));
    if config.api {
        wanted.push(("api", config.api_address.0));
    }
    if config.metrics {
        wanted.push(("metrics", config.metrics_address.0));
    }
    let mut report = Report::default();
    for (what, configured) in wanted {
        let listening = listeners
            .iter()
            .filter(|l| l.port() == configured.port())
            .copied()
            .collect();
        let check = PortCheck {
            what,
            configured,
            listening,
        };
        if !check.ok() {
            report.problems.push(format!(
                "{what} port {configured} is not listening (is the engine running with this configuration?)"
            ));
        }
        report.ports.push(check);
    }
    if let Some(conf) = &config.cluster {
        let check = check_cluster(conf);
        if let Err(e) = &check.redis_answer {
            report.problems.push(format!(
                "cluster: redis {} does not answer: {e}",
                check.redis
            ));
        }
        if let Some(e) = &check.advertise_error {
            report.problems.push(format!(
                "cluster: advertise {} does not take connections: {e}",
                check.advertise
            ));
        }
        report.cluster = Some(check);
    }
    if let Some(t) = target {
        let check = check_target(t, &routes, is_bridge);
        report.problems.extend(target_problems(&check));
        report.target = Some(check);
    }
    report
}

/// Whether an interface is a bridge: `/sys/class/net/<if>/bridge`, or a well-known bridge name.
fn is_bridge(name: &str) -> bool {
    std::path::Path::new("/sys/class/net")
        .join(name)
        .join("bridge")
        .exists()
        || procnet::KNOWN_BRIDGES.contains(&name)
        || name.starts_with("br-")
}

/// `rtmp://host:port/…`, `http://host:port/…`, `host:port` or `host`.
fn host_port(input: &str) -> (String, u16) {
    if let Ok(u) = crate::relay::url::parse(input) {
        return (u.host().to_owned(), u.port());
    }
    let rest = input.split_once("://").map_or(input, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.ends_with(']') => (
            h.trim_matches(['[', ']']).to_owned(),
            p.parse().unwrap_or(crate::relay::url::RTMP_PORT),
        ),
        _ => (
            authority.trim_matches(['[', ']']).to_owned(),
            crate::relay::url::RTMP_PORT,
        ),
    }
}

/// Resolves, routes and probes one target.
pub fn check_target(
    input: &str,
    routes: &[Route],
    is_bridge: impl Fn(&str) -> bool,
) -> TargetCheck {
    let (host, port) = host_port(input);
    let mut check = TargetCheck {
        input: input.to_owned(),
        host: host.clone(),
        port,
        ..TargetCheck::default()
    };
    let addr = match (host.as_str(), port).to_socket_addrs() {
        Ok(mut addrs) => addrs.next(),
        Err(e) => {
            check.resolve_error = Some(os_text(&e));
            None
        }
    };
    let Some(addr) = addr else {
        check
            .resolve_error
            .get_or_insert_with(|| "no address".to_owned());
        return check;
    };
    check.address = Some(addr.ip());
    if let IpAddr::V4(v4) = addr.ip() {
        // Loopback goes through the kernel's local table, which /proc/net/route does not show.
        check.route = if v4.is_loopback() {
            Some(Route {
                iface: "lo".to_owned(),
                destination: std::net::Ipv4Addr::new(127, 0, 0, 0),
                gateway: std::net::Ipv4Addr::UNSPECIFIED,
                mask: std::net::Ipv4Addr::new(255, 0, 0, 0),
                metric: 0,
            })
        } else {
            route_for(routes, v4).cloned()
        };
        check.overlaps = bridge_overlaps(routes, v4, &is_bridge);
        check.remedies = remedies(&check.overlaps, v4, routes);
    }
    check.connect_error = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
        .err()
        .map(|e| os_text(&e));
    check
}

/// The two ways out of a bridge overlap, spelled out for this host.
fn remedies(
    overlaps: &[BridgeOverlap],
    target: std::net::Ipv4Addr,
    routes: &[Route],
) -> Vec<String> {
    let Some(o) = overlaps.iter().find(|o| o.chosen) else {
        return Vec::new();
    };
    let how = match o.bridge.as_str() {
        "docker0" => "set \"bip\" (and \"default-address-pools\") in /etc/docker/daemon.json to a free range, e.g. \"bip\": \"10.200.0.1/24\", then restart docker".to_owned(),
        "cni0" => "change the subnet of the CNI network (/etc/cni/net.d/*.conflist, or the cluster's pod CIDR) to a free range".to_owned(),
        "virbr0" => "change the range of libvirt's network: virsh net-edit default, then virsh net-destroy/net-start default".to_owned(),
        b => format!("move bridge {b} to a free range in the configuration of whatever created it (container runtime, libvirt, netplan)"),
    };
    let default = routes
        .iter()
        .filter(|r| r.is_default())
        .min_by_key(|r| r.metric);
    let route = match default {
        Some(d) => format!("ip route add {target}/32 via {} dev {}", d.gateway, d.iface),
        None => format!("ip route add {target}/32 via <your gateway> dev <your uplink>"),
    };
    vec![
        format!("move the bridge's range: {how}"),
        format!("or add a more specific route via the real gateway: {route} (make it persistent in your network configuration)"),
    ]
}

fn target_problems(t: &TargetCheck) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(e) = &t.resolve_error {
        problems.push(format!("{}: cannot resolve: {e}", t.host));
    }
    for o in t.overlaps.iter().filter(|o| o.chosen) {
        problems.push(format!(
            "{} is inside {} of bridge {}: the kernel sends it to the bridge, not to your gateway",
            t.address.map(|a| a.to_string()).unwrap_or_default(),
            o.network,
            o.bridge
        ));
    }
    if t.address.is_some() && t.route.is_none() && t.address.is_some_and(|a| a.is_ipv4()) {
        problems.push(format!("no route to {}", t.host));
    }
    if let (Some(e), Some(a)) = (&t.connect_error, t.address) {
        problems.push(format!("connect {}: {e}", SocketAddr::new(a, t.port)));
    }
    problems
}

impl Report {
    pub fn to_json(&self) -> Value {
        let ports: Vec<Value> = self
            .ports
            .iter()
            .map(|p| {
                json!({
                    "name": p.what,
                    "configured": p.configured.to_string(),
                    "listening": p.ok(),
                    "listeningOn": p.listening.iter().map(|l| l.to_string()).collect::<Vec<_>>(),
                })
            })
            .collect();
        let target = self.target.as_ref().map(|t| {
            json!({
                "input": t.input,
                "host": t.host,
                "port": t.port,
                "address": t.address.map(|a| a.to_string()),
                "resolveError": t.resolve_error,
                "route": t.route.as_ref().map(|r| json!({
                    "interface": r.iface,
                    "network": r.network(),
                    "gateway": (!r.is_connected()).then(|| r.gateway.to_string()),
                })),
                "bridgeOverlaps": t.overlaps.iter().map(|o| json!({
                    "bridge": o.bridge,
                    "network": o.network,
                    "chosen": o.chosen,
                })).collect::<Vec<_>>(),
                "connect": t.connect_error.clone().unwrap_or_else(|| "ok".to_owned()),
                "remedies": t.remedies,
            })
        });
        let cluster = self.cluster.as_ref().map(|c| {
            json!({
                "redis": c.redis,
                "redisAnswer": match &c.redis_answer { Ok(a) => a.clone(), Err(e) => format!("error: {e}") },
                "redisOk": c.redis_answer.is_ok(),
                "advertise": c.advertise,
                "advertiseConnect": c.advertise_error.clone().unwrap_or_else(|| "ok".to_owned()),
                "notes": c.notes,
            })
        });
        json!({
            "ok": self.problems.is_empty(),
            "ports": ports,
            "target": target,
            "cluster": cluster,
            "problems": self.problems,
        })
    }

    pub fn to_text(&self) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(s, "ports:");
        for p in &self.ports {
            let on: Vec<String> = p.listening.iter().map(|l| l.to_string()).collect();
            let state = if p.ok() { "listening" } else { "NOT listening" };
            let _ = writeln!(
                s,
                "  {:<8} {:<22} {state}{}",
                p.what,
                p.configured,
                if on.is_empty() {
                    String::new()
                } else {
                    format!(" (on {})", on.join(", "))
                }
            );
        }
        if let Some(c) = &self.cluster {
            let _ = writeln!(s, "cluster:");
            match &c.redis_answer {
                Ok(a) => {
                    let _ = writeln!(s, "  redis     {} ok ({a})", c.redis);
                }
                Err(e) => {
                    let _ = writeln!(s, "  redis     {} NOT answering: {e}", c.redis);
                }
            }
            let connect = c.advertise_error.as_deref().unwrap_or("ok");
            let _ = writeln!(s, "  advertise {} connect: {connect}", c.advertise);
            for n in &c.notes {
                let _ = writeln!(s, "  note      {n}");
            }
        }
        if let Some(t) = &self.target {
            let _ = writeln!(s, "target {}:", t.input);
            match (&t.address, &t.resolve_error) {
                (Some(a), _) => {
                    let _ = writeln!(s, "  address  {a} port {}", t.port);
                }
                (None, Some(e)) => {
                    let _ = writeln!(s, "  address  cannot resolve {}: {e}", t.host);
                }
                (None, None) => {}
            }
            if let Some(r) = &t.route {
                let via = if r.is_connected() {
                    "directly connected".to_owned()
                } else {
                    format!("via {}", r.gateway)
                };
                let _ = writeln!(s, "  route    {} dev {} {via}", r.network(), r.iface);
            }
            for o in &t.overlaps {
                let _ = writeln!(
                    s,
                    "  bridge   {} holds {}{}",
                    o.bridge,
                    o.network,
                    if o.chosen {
                        " and wins the route: CONFLICT"
                    } else {
                        " (a more specific route wins)"
                    }
                );
            }
            let _ = writeln!(
                s,
                "  connect  {}",
                t.connect_error.as_deref().unwrap_or("ok")
            );
            for r in &t.remedies {
                let _ = writeln!(s, "  remedy   {r}");
            }
        }
        if self.problems.is_empty() {
            let _ = writeln!(s, "no problems found");
        } else {
            let _ = writeln!(s, "problems:");
            for p in &self.problems {
                let _ = writeln!(s, "  - {p}");
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_read_from_urls_and_hosts() {
        assert_eq!(
            host_port("rtmp://cam.local:1936/live/a"),
            ("cam.local".into(), 1936)
        );
        assert_eq!(
            host_port("http://10.0.0.1/live/a.flv"),
            ("10.0.0.1".into(), 80)
        );
        assert_eq!(host_port("10.0.0.1"), ("10.0.0.1".into(), 1935));
        assert_eq!(host_port("10.0.0.1:8080"), ("10.0.0.1".into(), 8080));
        assert_eq!(host_port("[::1]:99"), ("::1".into(), 99));
    }

    #[test]
    fn a_bridge_overlap_names_the_conflict_and_both_remedies() {
        let routes = procnet::parse_routes(
            "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT
eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
",
        );
        let overlaps = bridge_overlaps(&routes, "172.17.0.99".parse().unwrap(), |n| n == "docker0");
        let r = remedies(&overlaps, "172.17.0.99".parse().unwrap(), &routes);
        assert_eq!(r.len(), 2);
        assert!(r[0].contains("/etc/docker/daemon.json"), "{}", r[0]);
        assert!(
            r[1].contains("ip route add 172.17.0.99/32 via 192.168.1.1 dev eth0"),
            "{}",
            r[1]
        );
        let t = TargetCheck {
            address: Some("172.17.0.99".parse().unwrap()),
            port: 1935,
            overlaps,
            route: routes.get(1).cloned(),
            connect_error: Some("no route to host".into()),
            ..TargetCheck::default()
        };
        let p = target_problems(&t);
        assert!(
            p[0].contains("inside 172.17.0.0/16 of bridge docker0"),
            "{p:?}"
        );
        assert_eq!(p[1], "connect 172.17.0.99:1935: no route to host");
    }
}
