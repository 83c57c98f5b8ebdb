//! Who is asking: the client address (through trusted proxies) and HTTP Basic credentials, checked
//! against the internal users with the `api` or `metrics` action.

use std::net::IpAddr;

pub use crate::protocol::http::basic_credentials;

use super::ApiError;
use crate::auth::users::IpNet;
use crate::auth::{Action, AuthRequest, Authenticator, Protocol};
use crate::config::Config;
use crate::protocol::http::Request;

/// The client's address: `peer`, or, when `peer` is a trusted proxy, the right-most
/// `X-Forwarded-For` entry that is not itself a trusted proxy (gin's rule, which MediaMTX uses).
/// A malformed entry stops the walk at the last address known good.
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let Some(header) = forwarded_for else {
        return peer;
    };
    let mut client = peer;
    for entry in header.rsplit(',') {
        match entry.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

/// The address a request on the API, metrics or playback listener comes from, behind the
/// configured `apiTrustedProxies`.
pub fn requester_ip(config: &Config, peer: IpAddr, req: &Request) -> IpAddr {
    let trusted: Vec<IpNet> = config
        .api_trusted_proxies
        .iter()
        .filter_map(|p| IpNet::parse(p))
        .collect();
    client_ip(peer, req.header("x-forwarded-for"), &trusted)
}

/// Checks an API or metrics request against the internal users, then (with `authMethod: http`,
/// for actions not in `authHTTPExclude`) asks the auth service.
pub async fn authorize(
    auth: &Authenticator,
    action: Action,
    client: IpAddr,
    credentials: Option<&(String, String)>,
    query: &str,
    now_unix: u64,
) -> Result<(), ApiError> {
    authorize_path(auth, action, "", client, credentials, query, now_unix).await
}

/// [`authorize`] for an action on a path (`playback` of `live/cam`: app `live`, stream `cam`).
pub async fn authorize_path(
    auth: &Authenticator,
    action: Action,
    path: &str,
    client: IpAddr,
    credentials: Option<&(String, String)>,
    query: &str,
    now_unix: u64,
) -> Result<(), ApiError> {
    let (app, stream) = path.split_once('/').unwrap_or((path, ""));
    let request = AuthRequest {
        action,
        protocol: Protocol::Api,
        vhost: "",
        app,
        stream,
        query,
        headers: &[],
        peer: client,
        user: credentials.map(|c| c.0.as_str()),
        pass: credentials.map(|c| c.1.as_str()),
        now_unix,
    };
    let refuse = || ApiError::Unauthorized {
        challenge: credentials.is_none(),
    };
    auth.check(&request).map_err(|denied| {
        tracing::info!(action = %action, client = %client, "api request refused: {denied}");
        refuse()
    })?;
    if let Some((addr, ask)) = auth.http_hook_request(&request, None) {
        if let Err(why) = crate::server::auth_hook::ask(addr, ask).await {
            tracing::info!(action = %action, client = %client, "api request refused: {why}");
            return Err(refuse());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| IpNet::parse(s).unwrap()).collect()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let trusted = nets(&["10.0.0.0/8"]);
        let xff = Some("203.0.113.9, 10.0.0.7");
        assert_eq!(client_ip(ip("10.1.1.1"), xff, &trusted), ip("203.0.113.9"));
        assert_eq!(client_ip(ip("192.0.2.1"), xff, &trusted), ip("192.0.2.1"));
        assert_eq!(client_ip(ip("10.1.1.1"), None, &trusted), ip("10.1.1.1"));
        // A client cannot smuggle an address past the proxy's own entry.
        assert_eq!(
            client_ip(ip("10.1.1.1"), Some("127.0.0.1, 198.51.100.4"), &trusted),
            ip("198.51.100.4")
        );
        assert_eq!(
            client_ip(ip("10.1.1.1"), Some("junk"), &trusted),
            ip("10.1.1.1")
        );
        assert_eq!(client_ip(ip("10.1.1.1"), xff, &[]), ip("10.1.1.1"));
    }

    #[test]
    fn basic_auth() {
        // "admin:s3cr:et"
        assert_eq!(
            basic_credentials(Some("Basic YWRtaW46czNjcjpldA==")),
            Some(("admin".into(), "s3cr:et".into()))
        );
        assert_eq!(basic_credentials(Some("Bearer abc")), None);
        assert_eq!(basic_credentials(Some("Basic !!!")), None);
        assert_eq!(basic_credentials(None), None);
    }
}
