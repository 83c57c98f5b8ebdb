//! MediaMTX's forward endpoints, `/v3/paths/forward/list?path=NAME` and
//! `/v3/paths/forward/get?path=NAME&id=UUID`: the pushes of a path's `forward` entries, in
//! MediaMTX's `APIForwardDest` shape, built from what the data cores reported ([`ForwardView`]).
//!
//! What differs from MediaMTX, because Corestream's pushes differ:
//! - A push exists while its stream is live (it starts when the stream is published, stops when
//!   it ends), so a path lists its destinations only then, and each publish gives them new ids.
//!   MediaMTX keeps an idle destination, with one id, for as long as its path exists.
//! - `state` is MediaMTX's word for where the push is: `forwarding` while a connection is being
//!   made or carries the stream, `error` while it waits to retry after a failure (`lastError`
//!   says why; MediaMTX clears it when the next try starts, and so does this), `idle` once it
//!   was stopped and is about to go.
//! - Credentials in `conf.dest` (and in `lastError`, by the relay) are `<redacted>`, as
//!   everywhere in this API; `whipBearerToken` is always `""` (Corestream has no WHIP and
//!   refuses a token).
//!
//! The checks come in MediaMTX's order: the id (get), the `path` parameter, the path, the
//! pagination parameters (list), the destination.
#![forbid(unsafe_code)]

use serde_json::{json, Value};

use super::page::Page;
use super::time::rfc3339;
use super::views;
use super::ApiError;
use crate::config::Config;
use crate::relay::{ForwardView, LinkState};
use crate::runtime::{ConnUuid, CoreView};

/// The `path` query parameter, which both endpoints need (missing or empty: 400).
pub fn path_param(query: &[(String, String)]) -> Result<&str, ApiError> {
    param(query, "path")
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::invalid("invalid path"))
}

/// The `id` and `path` query parameters of `get`, the id checked first as MediaMTX checks it
/// (a missing id is an empty one: `invalid UUID length: 0`).
pub fn get_params(query: &[(String, String)]) -> Result<(ConnUuid, &str), ApiError> {
    let id =
        super::uuid::parse(param(query, "id").unwrap_or_default()).map_err(ApiError::Invalid)?;
    Ok((id, path_param(query)?))
}

/// The first value of `name`, as Go's `Query` reads it.
fn param<'q>(query: &'q [(String, String)], name: &str) -> Option<&'q str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The list answer: the path's destinations by position, paginated.
pub fn list(
    views: &[CoreView],
    config: &Config,
    path: &str,
    query: &[(String, String)],
) -> Result<Value, ApiError> {
    let dests = dests_of(views, config, path)?;
    let page = Page::from_query(query)?;
    Ok(page.list(dests.into_iter().map(dest_json).collect()))
}

/// The get answer: the destination `id` of the path.
pub fn get(
    views: &[CoreView],
    config: &Config,
    path: &str,
    id: ConnUuid,
) -> Result<Value, ApiError> {
    dests_of(views, config, path)?
        .into_iter()
        .find(|f| f.id == id)
        .map(dest_json)
        .ok_or(ApiError::ForwardDestNotFound)
}

/// The pushes of the path `name`, by position then age; `path not found` for a name MediaMTX
/// would not list as a path (see [`views::paths`]).
fn dests_of<'a>(
    views: &'a [CoreView],
    config: &'a Config,
    name: &str,
) -> Result<Vec<&'a ForwardView>, ApiError> {
    let path = views::paths(views, config)
        .into_iter()
        .find(|p| p.name == name)
        .ok_or(ApiError::PathNotFound)?;
    let mut dests = path.forwards;
    dests.sort_by_key(|f| (f.pos, f.created_ms, f.id));
    Ok(dests)
}

/// One destination in MediaMTX's `APIForwardDest` shape, with its keys and nothing else.
pub fn dest_json(f: &ForwardView) -> Value {
    let state = forward_state(f.state);
    let last_error = match (f.state, &f.last_error) {
        // The relay already hid the dest's credentials in it.
        (LinkState::Error, Some(e)) => e.as_str(),
        _ => "",
    };
    json!({
        "id": f.id.to_string(),
        "pos": f.pos,
        "created": rfc3339(f.created_ms),
        "conf": {
            "dest": super::redact::url(&f.dest),
            "destFingerprint": f.fingerprint.as_deref().unwrap_or_default(),
            "whipBearerToken": "",
        },
        "protocol": protocol(&f.dest),
        "state": state,
        "lastError": last_error,
        "outboundBytes": f.bytes_sent,
    })
}

/// MediaMTX's `idle`, `forwarding` or `error` for a push's state.
fn forward_state(state: LinkState) -> &'static str {
    match state {
        LinkState::Connecting | LinkState::Ready => "forwarding",
        LinkState::Error => "error",
        LinkState::Idle => "idle",
    }
}

/// MediaMTX's protocol name: the dest's scheme (configuration accepts `rtmp` and `rtmps`).
fn protocol(dest: &str) -> String {
    dest.split_once("://")
        .map_or("", |(scheme, _)| scheme)
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::page::tests::q;
    use crate::api::views::tests::two_cores;

    fn push(pos: usize, n: u8, path: &str, state: LinkState) -> ForwardView {
        ForwardView {
            id: ConnUuid([n; 16]),
            pos,
            created_ms: 1_000 * u64::from(n),
            path: path.into(),
            dest: format!("rtmp://user:secret@127.0.0.1:1935/app{n}"),
            fingerprint: None,
            state,
            last_error: Some("connect 127.0.0.1:1935: connection refused".into()),
            last_error_ms: Some(1),
            bytes_sent: 100 * u64::from(n),
        }
    }

    /// `live/a` (live on core 0) with two pushes reported out of order, one on core 1 of a
    /// stream that just moved there; `cam` is configured and not live.
    fn setup() -> (Vec<CoreView>, Config) {
        let mut views = two_cores();
        views[0]
            .forwards
            .push(push(2, 7, "live/a", LinkState::Ready));
        views[1]
            .forwards
            .push(push(1, 9, "live/a", LinkState::Error));
        views[1]
            .forwards
            .push(push(1, 8, "live/a", LinkState::Connecting));
        let config = Config::parse("paths:\n  all_others:\n  cam: {}\n", "c").unwrap();
        (views, config)
    }

    #[test]
    fn items_in_mediamtx_shape_by_position() {
        let (views, config) = setup();
        let answer = list(&views, &config, "live/a", &[]).unwrap();
        assert_eq!(
            (answer["itemCount"].clone(), answer["pageCount"].clone()),
            (json!(3), json!(1))
        );
        let items = answer["items"].as_array().unwrap();
        let brief: Vec<Value> = items
            .iter()
            .map(|i| json!([i["pos"], i["state"], i["lastError"], i["outboundBytes"]]))
            .collect();
        assert_eq!(
            brief,
            [
                json!([1, "forwarding", "", 800]),
                json!([
                    1,
                    "error",
                    "connect 127.0.0.1:1935: connection refused",
                    900
                ]),
                json!([2, "forwarding", "", 700]),
            ]
        );
        let first = &items[0];
        let mut keys: Vec<&str> = first
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "conf",
                "created",
                "id",
                "lastError",
                "outboundBytes",
                "pos",
                "protocol",
                "state"
            ]
        );
        assert_eq!(first["id"], ConnUuid([8; 16]).to_string());
        assert_eq!(first["created"], "1970-01-01T00:00:08.000Z");
        assert_eq!(first["protocol"], "rtmp");
        assert_eq!(
            first["conf"],
            json!({"dest": "rtmp://user:<redacted>@127.0.0.1:1935/app8", "destFingerprint": "", "whipBearerToken": ""})
        );
    }

    #[test]
    fn get_finds_by_id_within_the_path() {
        let (views, config) = setup();
        let item = get(&views, &config, "live/a", ConnUuid([7; 16])).unwrap();
        assert_eq!(
            (item["pos"].clone(), item["state"].clone()),
            (json!(2), json!("forwarding"))
        );
        let missing = get(&views, &config, "live/a", ConnUuid([1; 16])).unwrap_err();
        assert_eq!(
            (missing.status(), missing.to_string()),
            (404, "forward destination not found".into())
        );
        // Another path's push is not this path's.
        let other = get(&views, &config, "cam", ConnUuid([7; 16])).unwrap_err();
        assert!(matches!(other, ApiError::ForwardDestNotFound));
    }

    #[test]
    fn paths_as_mediamtx_knows_them() {
        let (views, config) = setup();
        // Configured but not live: a path, with no pushes running.
        assert_eq!(
            list(&views, &config, "cam", &[]).unwrap(),
            json!({"itemCount": 0, "pageCount": 0, "items": []})
        );
        // Neither configured by name nor live.
        for name in ["nothing/here", "live"] {
            let e = list(&views, &config, name, &[]).unwrap_err();
            assert_eq!((e.status(), e.to_string()), (404, "path not found".into()));
        }
        // The path is looked up before the pagination parameters are read, as MediaMTX does.
        let zero = q(&[("itemsPerPage", "0")]);
        assert!(matches!(
            list(&views, &config, "nothing", &zero),
            Err(ApiError::PathNotFound)
        ));
        let e = list(&views, &config, "live/a", &zero).unwrap_err();
        assert_eq!(
            (e.status(), e.to_string()),
            (400, "invalid items per page".into())
        );
        let paged = list(
            &views,
            &config,
            "live/a",
            &q(&[("itemsPerPage", "2"), ("page", "1")]),
        )
        .unwrap();
        assert_eq!(
            (paged["itemCount"].clone(), paged["pageCount"].clone()),
            (json!(3), json!(2))
        );
        assert_eq!(paged["items"][0]["pos"], 2);
    }

    #[test]
    fn parameters_checked_in_mediamtx_order() {
        let text = |r: Result<(ConnUuid, &str), ApiError>| r.unwrap_err().to_string();
        let id = "123e4567-e89b-42d3-a456-426614174000";
        let query = q(&[("path", "")]);
        assert_eq!(text(get_params(&query)), "invalid UUID length: 0");
        let query = q(&[("id", "nope"), ("path", "")]);
        assert_eq!(text(get_params(&query)), "invalid UUID length: 4");
        let query = q(&[("id", id)]);
        assert_eq!(text(get_params(&query)), "invalid path");
        let query = q(&[("id", id), ("path", "a/b"), ("path", "c")]);
        let (parsed, path) = get_params(&query).unwrap();
        assert_eq!((parsed.to_string().as_str(), path), (id, "a/b"));
        assert!(matches!(
            path_param(&q(&[("path", "")])),
            Err(ApiError::Invalid(_))
        ));
    }

    #[test]
    fn states_in_mediamtx_words() {
        assert_eq!(forward_state(LinkState::Connecting), "forwarding");
        assert_eq!(forward_state(LinkState::Ready), "forwarding");
        assert_eq!(forward_state(LinkState::Error), "error");
        assert_eq!(forward_state(LinkState::Idle), "idle");
        assert_eq!(protocol("RTMPS://cdn/app"), "rtmps");
        assert_eq!(protocol("rtmp://cdn/app"), "rtmp");
    }
}
