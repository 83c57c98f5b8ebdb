//! Readers of the kernel's network tables as `/proc` prints them, and the decisions `doctor`
//! takes from them: which sockets listen, which route the kernel would pick for an address, and
//! whether that address falls inside a bridge's network. Pure functions over text, so fixtures
//! test them.
#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// One IPv4 route of `/proc/net/route`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub iface: String,
    pub destination: Ipv4Addr,
    /// `0.0.0.0` for a directly connected network.
    pub gateway: Ipv4Addr,
    pub mask: Ipv4Addr,
    pub metric: u32,
}

impl Route {
    pub fn prefix_len(&self) -> u32 {
        u32::from(self.mask).count_ones()
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & u32::from(self.mask) == u32::from(self.destination) & u32::from(self.mask)
    }

    /// `172.17.0.0/16`.
    pub fn network(&self) -> String {
        format!("{}/{}", self.destination, self.prefix_len())
    }

    pub fn is_default(&self) -> bool {
        self.prefix_len() == 0
    }

    pub fn is_connected(&self) -> bool {
        self.gateway.is_unspecified()
    }
}

/// `/proc` prints addresses as the kernel's in-memory words in hex: host byte order of a
/// network-order value.
fn hex_v4(word: &str) -> Option<Ipv4Addr> {
    let v = u32::from_str_radix(word, 16).ok()?;
    Some(Ipv4Addr::from(v.to_ne_bytes()))
}

fn hex_v6(words: &str) -> Option<Ipv6Addr> {
    if words.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for i in 0..4 {
        let v = u32::from_str_radix(&words[i * 8..i * 8 + 8], 16).ok()?;
        bytes[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
    }
    Some(Ipv6Addr::from(bytes))
}

/// The routes of a `/proc/net/route` text (up routes only: flag RTF_UP).
pub fn parse_routes(text: &str) -> Vec<Route> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 {
                return None;
            }
            let flags = u32::from_str_radix(f[3], 16).ok()?;
            if flags & 1 == 0 {
                return None;
            }
            Some(Route {
                iface: f[0].to_owned(),
                destination: hex_v4(f[1])?,
                gateway: hex_v4(f[2])?,
                metric: f[6].parse().ok()?,
                mask: hex_v4(f[7])?,
            })
        })
        .collect()
}

/// The route the kernel picks for `ip` from the main table: the longest prefix, then the lowest
/// metric.
pub fn route_for(routes: &[Route], ip: Ipv4Addr) -> Option<&Route> {
    routes
        .iter()
        .filter(|r| r.contains(ip))
        .min_by_key(|r| (std::cmp::Reverse(r.prefix_len()), r.metric))
}

/// The listening TCP sockets of a `/proc/net/tcp` or `/proc/net/tcp6` text.
pub fn parse_listeners(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 4 || f[3] != "0A" {
                return None;
            }
            let (addr, port) = f[1].split_once(':')?;
            let port = u16::from_str_radix(port, 16).ok()?;
            let ip = match addr.len() {
                8 => IpAddr::V4(hex_v4(addr)?),
                32 => IpAddr::V6(hex_v6(addr)?),
                _ => return None,
            };
            Some(SocketAddr::new(ip, port))
        })
        .collect()
}

/// Interface names that are bridges by name even where `/sys` cannot tell (container runtimes'
/// and libvirt's defaults).
pub const KNOWN_BRIDGES: [&str; 4] = ["docker0", "cni0", "virbr0", "podman0"];

/// A bridge whose network holds the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeOverlap {
    pub bridge: String,
    pub network: String,
    /// Whether the kernel would actually send the target to the bridge (its route wins).
    pub chosen: bool,
}

/// Every bridge network (a connected route on a bridge) that contains `ip`.
pub fn bridge_overlaps(
    routes: &[Route],
    ip: Ipv4Addr,
    is_bridge: impl Fn(&str) -> bool,
) -> Vec<BridgeOverlap> {
    let chosen = route_for(routes, ip);
    routes
        .iter()
        .filter(|r| r.is_connected() && !r.is_default() && r.contains(ip) && is_bridge(&r.iface))
        .map(|r| BridgeOverlap {
            bridge: r.iface.clone(),
            network: r.network(),
            chosen: chosen == Some(r),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host with a LAN default route, docker0 on its default range and a libvirt bridge.
    const ROUTE: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth0\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
virbr0\t007AA8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
eth0\t000010AC\t0101A8C0\t0003\t0\t0\t0\t0000FFFF\t0\t0\t0
";

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:270D 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 00000000:078F 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 100 0 0 10 0
   2: 0100007F:078F 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 100 0 0 10 0
";

    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4 1 0000000000000000 100 0 0 10 0
";

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn routes_parse() {
        let routes = parse_routes(ROUTE);
        assert_eq!(routes.len(), 5);
        assert_eq!(routes[0].gateway, ip("192.168.1.1"));
        assert!(routes[0].is_default());
        assert_eq!(routes[2].network(), "172.17.0.0/16");
        assert_eq!(routes[2].iface, "docker0");
        assert_eq!(routes[3].network(), "192.168.122.0/24");
    }

    #[test]
    fn longest_prefix_wins() {
        let routes = parse_routes(ROUTE);
        assert_eq!(route_for(&routes, ip("8.8.8.8")).unwrap().iface, "eth0");
        assert_eq!(
            route_for(&routes, ip("192.168.1.20")).unwrap().network(),
            "192.168.1.0/24"
        );
        assert_eq!(
            route_for(&routes, ip("172.17.5.9")).unwrap().iface,
            "docker0"
        );
        // A more specific route via the gateway takes 172.16/16 away from nothing: plain LAN.
        assert_eq!(
            route_for(&routes, ip("172.16.0.9")).unwrap().gateway,
            ip("192.168.1.1")
        );
        assert_eq!(route_for(&[], ip("1.1.1.1")), None);
    }

    #[test]
    fn a_target_inside_a_bridge_network_is_flagged() {
        let routes = parse_routes(ROUTE);
        let is_bridge = |n: &str| KNOWN_BRIDGES.contains(&n);
        let overlaps = bridge_overlaps(&routes, ip("172.17.5.9"), is_bridge);
        assert_eq!(
            overlaps,
            vec![BridgeOverlap {
                bridge: "docker0".into(),
                network: "172.17.0.0/16".into(),
                chosen: true,
            }]
        );
        assert!(bridge_overlaps(&routes, ip("192.168.122.7"), is_bridge)[0].chosen);
        assert!(bridge_overlaps(&routes, ip("8.8.8.8"), is_bridge).is_empty());
        // eth0's own LAN is not a bridge.
        assert!(bridge_overlaps(&routes, ip("192.168.1.20"), is_bridge).is_empty());
        // With a more specific route via the real gateway (remedy 2), the bridge no longer wins.
        let mut fixed = routes.clone();
        fixed.push(Route {
            iface: "eth0".into(),
            destination: ip("172.17.5.0"),
            gateway: ip("192.168.1.1"),
            mask: ip("255.255.255.0"),
            metric: 0,
        });
        assert!(!bridge_overlaps(&fixed, ip("172.17.5.9"), is_bridge)[0].chosen);
    }

    #[test]
    fn listeners_parse() {
        let mut l = parse_listeners(TCP);
        l.extend(parse_listeners(TCP6));
        let want: Vec<SocketAddr> = vec![
            "127.0.0.1:9997".parse().unwrap(),
            "0.0.0.0:1935".parse().unwrap(),
            "[::1]:8080".parse().unwrap(),
        ];
        assert_eq!(l, want);
    }
}
