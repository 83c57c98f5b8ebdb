//! Secrets are never shown: passwords, URL credentials and signature query parameters are
//! replaced with MediaMTX's `<redacted>` in every API answer, and a write that sends
//! `<redacted>` back keeps the stored value (so a client can GET, edit and PATCH a document).

use serde_json::Value;

use crate::config::Config;

/// What a secret is shown as (MediaMTX's text).
pub const REDACTED: &str = "<redacted>";

/// Query parameters that are secrets whatever the domain says.
const ALWAYS_SECRET: [&str; 4] = ["pass", "password", "token", "key"];

/// `scheme://user:pass@host/...` with the password (or a lone user part, often a token)
/// replaced; anything else as is.
pub fn url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &rest[..at];
    let shown = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:{REDACTED}"),
        None => REDACTED.to_owned(),
    };
    format!("{scheme}://{shown}{}", &rest[at..])
}

/// A raw query with the value of every secret parameter (`names`, and `pass`, `password`,
/// `token`, `key`) replaced. Names compare case-insensitively.
pub fn query(query: &str, names: &[String]) -> String {
    if query.is_empty() {
        return String::new();
    }
    query
        .split('&')
        .map(|pair| {
            let (name, _) = pair.split_once('=').unwrap_or((pair, ""));
            let decoded = crate::protocol::http::parse_query(name)
                .into_iter()
                .next()
                .map(|(n, _)| n)
                .unwrap_or_default();
            let secret = ALWAYS_SECRET
                .iter()
                .any(|s| s.eq_ignore_ascii_case(&decoded))
                || names.iter().any(|s| s.eq_ignore_ascii_case(&decoded));
            if secret && pair.contains('=') {
                format!("{name}={REDACTED}")
            } else {
                pair.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Whether a MediaMTX key we keep without serving holds a secret (`srtReadPassphrase`,
/// `whepBearerToken`, an ICE server's `password`, …): its name says so.
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["pass", "token", "secret"].iter().any(|s| key.contains(s))
}

/// Every non-empty string under a secret key of `v`, at any depth, shown as `<redacted>`.
fn kept_secrets(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match value {
                    Value::String(s) if is_secret_key(key) && !s.is_empty() => {
                        *s = REDACTED.to_owned()
                    }
                    other => kept_secrets(other),
                }
            }
        }
        Value::Array(list) => list.iter_mut().for_each(kept_secrets),
        _ => {}
    }
}

/// The kept MediaMTX keys of a write, with every `<redacted>` under a secret key (at any depth)
/// put back from the stored value at the same place.
pub fn restore_kept<'a>(
    sent: impl IntoIterator<Item = (&'a String, &'a mut Value)>,
    stored: &std::collections::BTreeMap<String, Value>,
) {
    for (key, value) in sent {
        restore_entry(key, value, stored.get(key));
    }
}

fn restore_entry(key: &str, sent: &mut Value, stored: Option<&Value>) {
    match (sent, stored) {
        (Value::String(s), Some(Value::String(old))) if s == REDACTED && is_secret_key(key) => {
            *s = old.clone();
        }
        (Value::Object(map), Some(Value::Object(old))) => {
            for (k, v) in map.iter_mut() {
                restore_entry(k, v, old.get(k));
            }
        }
        (Value::Array(list), Some(Value::Array(old))) => {
            for (i, item) in list.iter_mut().enumerate() {
                restore_entry(key, item, old.get(i));
            }
        }
        _ => {}
    }
}

/// `/v3/config/global/get`: internal users' passwords, credentials in `authHTTPAddress`, the
/// secrets among the MediaMTX keys we keep, and `apiTrustedProxies` as networks.
pub fn global(config: &Config, mut v: Value) -> Value {
    if let Value::Object(map) = &mut v {
        for (key, value) in map.iter_mut() {
            if !config.mediamtx.contains_key(key) {
                continue;
            }
            match value {
                Value::String(s) if is_secret_key(key) && !s.is_empty() => *s = REDACTED.to_owned(),
                other => kept_secrets(other),
            }
        }
    }
    if let Some(Value::Array(users)) = v.get_mut("authInternalUsers") {
        for u in users {
            if let Some(p) = u.get_mut("pass") {
                if p.as_str().is_some_and(|s| !s.is_empty()) {
                    *p = Value::from(REDACTED);
                }
            }
        }
    }
    if let Some(Value::String(a)) = v.get_mut("authHTTPAddress") {
        *a = url(a);
    }
    // The cluster's Redis password (`redis://user:pass@…`, `redis+sentinel://…`).
    if let Some(Value::String(r)) = v.get_mut("cluster").and_then(|c| c.get_mut("redis")) {
        *r = url(r);
    }
    if let Some(p) = v.get_mut("apiTrustedProxies") {
        *p = config
            .api_trusted_proxies
            .iter()
            .map(|s| {
                crate::auth::users::IpNet::parse(s).map_or_else(|| s.clone(), |n| n.to_string())
            })
            .collect();
    }
    v
}

/// A path configuration's JSON: credentials in `source`, `origins` and forward `dest`s, and the
/// secrets among the MediaMTX keys we keep (`srtReadPassphrase`, `readPass`, …).
pub fn path(mut v: Value) -> Value {
    kept_secrets(&mut v);
    if let Some(Value::String(s)) = v.get_mut("source") {
        *s = url(s);
    }
    if let Some(Value::Array(list)) = v.get_mut("origins") {
        for o in list {
            if let Value::String(s) = o {
                *s = url(s);
            }
        }
    }
    if let Some(Value::Array(list)) = v.get_mut("forward") {
        for f in list {
            if let Some(Value::String(s)) = f.get_mut("dest") {
                *s = url(s);
            }
        }
    }
    v
}

/// A URL sent back as shown (`url(stored) == sent`, with `<redacted>` in it) means the stored URL.
pub fn restore_url(sent: &mut String, stored: Option<&str>) {
    if let Some(stored) = stored {
        if sent.contains(REDACTED) && url(stored) == *sent {
            *sent = stored.to_owned();
        }
    }
}

/// Restores `<redacted>` passwords in a global patch's `authInternalUsers` from the entry at the
/// same place with the same user; one without such an entry is refused.
pub fn restore_global(
    patch: &mut serde_json::Map<String, Value>,
    config: &Config,
) -> Result<(), String> {
    if let Some(Value::String(sent)) = patch.get_mut("cluster").and_then(|c| c.get_mut("redis")) {
        restore_url(sent, config.cluster.as_ref().map(|c| c.redis.as_str()));
    }
    if let Some(Value::Array(users)) = patch.get_mut("authInternalUsers") {
        for (i, u) in users.iter_mut().enumerate() {
            let sent_user = u.get("user").and_then(Value::as_str).map(str::to_owned);
            let Some(p) = u.get_mut("pass") else { continue };
            if p.as_str() != Some(REDACTED) {
                continue;
            }
            let stored = config
                .auth_internal_users
                .get(i)
                .filter(|s| Some(&s.user) == sent_user.as_ref());
            match stored {
                Some(s) => *p = Value::from(s.pass.clone()),
                None => {
                    return Err(format!(
                        "authInternalUsers[{i}].pass: {REDACTED} keeps only the password of the same user at the same place"
                    ))
                }
            }
        }
    }
    if let Some(Value::String(a)) = patch.get_mut("authHTTPAddress") {
        restore_url(a, config.auth_http_address.as_deref());
    }
    restore_kept(
        patch
            .iter_mut()
            .filter(|(k, _)| config.mediamtx.contains_key(*k)),
        &config.mediamtx,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_mediamtx_secrets_are_shown_redacted_and_restored_from_what_is_stored() {
        let stored: std::collections::BTreeMap<String, Value> =
            serde_json::from_value(serde_json::json!({
                "srtReadPassphrase": "longsecretphrase",
                "whepBearerToken": "tok",
                "webrtcICEServers2": [{"url": "stun:x", "username": "u", "password": "pw"}],
                "runOnReady": "",
            }))
            .unwrap();
        let mut shown = path(serde_json::to_value(&stored).unwrap());
        assert_eq!(shown["srtReadPassphrase"], REDACTED);
        assert_eq!(shown["whepBearerToken"], REDACTED);
        assert_eq!(shown["webrtcICEServers2"][0]["password"], REDACTED);
        assert_eq!(shown["webrtcICEServers2"][0]["username"], "u");
        assert_eq!(shown["runOnReady"], "", "empty is not a secret");
        // Sent back as shown: the stored secrets stay.
        let mut sent: std::collections::BTreeMap<String, Value> =
            serde_json::from_value(shown.take()).unwrap();
        restore_kept(sent.iter_mut(), &stored);
        assert_eq!(sent, stored);
    }

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(
            url("rtsp://admin:s3cret@10.0.0.1:554/cam"),
            "rtsp://admin:<redacted>@10.0.0.1:554/cam"
        );
        assert_eq!(url("rtmp://tok@h/app"), "rtmp://<redacted>@h/app");
        assert_eq!(url("rtmp://h/app?x=a@b"), "rtmp://h/app?x=a@b");
        assert_eq!(url("publisher"), "publisher");
        let mut sent = url("rtsp://a:b@h/x");
        restore_url(&mut sent, Some("rtsp://a:b@h/x"));
        assert_eq!(sent, "rtsp://a:b@h/x");
        let mut other = "rtsp://a:<redacted>@evil/x".to_owned();
        restore_url(&mut other, Some("rtsp://a:b@h/x"));
        assert_eq!(other, "rtsp://a:<redacted>@evil/x");
    }

    #[test]
    fn queries_lose_signatures_and_passwords() {
        let names = vec!["txSecret".to_owned()];
        assert_eq!(
            query("txSecret=abc&txTime=68cd7af3&user=u&pass=p&Token=t", &names),
            "txSecret=<redacted>&txTime=68cd7af3&user=u&pass=<redacted>&Token=<redacted>"
        );
        assert_eq!(query("", &names), "");
        assert_eq!(query("flag&x=1", &names), "flag&x=1");
    }
}
