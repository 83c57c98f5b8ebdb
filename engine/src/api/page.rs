//! MediaMTX's list pagination: `itemsPerPage` (default 100) and `page` (from 0) query parameters,
//! answered as `{"itemCount","pageCount","items"}`.

use serde_json::{json, Value};

use super::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub items_per_page: usize,
    pub page: usize,
}

impl Page {
    /// Reads the parameters from the decoded query pairs; a bad value is a 400 with MediaMTX's
    /// text (Go's `strconv.ParseUint` error for what is not a number below 2^31,
    /// `invalid items per page` for 0 items per page).
    pub fn from_query(pairs: &[(String, String)]) -> Result<Page, ApiError> {
        let get = |name: &str, default: usize| -> Result<usize, ApiError> {
            match pairs.iter().find(|(k, _)| k == name) {
                None => Ok(default),
                Some((_, v)) if v.is_empty() => Ok(default),
                Some((_, v)) => parse_uint31(v).map_err(ApiError::Invalid),
            }
        };
        let items_per_page = get("itemsPerPage", 100)?;
        if items_per_page == 0 {
            return Err(ApiError::invalid("invalid items per page"));
        }
        Ok(Page {
            items_per_page,
            page: get("page", 0)?,
        })
    }

    /// The list body for `items` (already sorted).
    pub fn list(&self, items: Vec<Value>) -> Value {
        let count = items.len();
        let page_count = count.div_ceil(self.items_per_page);
        let start = self.page.saturating_mul(self.items_per_page).min(count);
        let end = start.saturating_add(self.items_per_page).min(count);
        let page: Vec<Value> = items.into_iter().skip(start).take(end - start).collect();
        json!({"itemCount": count, "pageCount": page_count, "items": page})
    }
}

/// An unsigned number below 2^31, or the error text of Go's `strconv.ParseUint(v, 10, 31)`.
fn parse_uint31(v: &str) -> Result<usize, String> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.ParseUint: parsing {v:?}: invalid syntax"));
    }
    v.parse::<u64>()
        .ok()
        .filter(|&n| n < 1 << 31)
        .map(|n| n as usize)
        .ok_or_else(|| format!("strconv.ParseUint: parsing {v:?}: value out of range"))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Query pairs as a request gives them.
    pub(crate) fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).into(), (*b).into()))
            .collect()
    }

    #[test]
    fn pages() {
        let items: Vec<Value> = (0..5).map(|i| json!(i)).collect();
        let p = Page::from_query(&q(&[("itemsPerPage", "2"), ("page", "2")])).unwrap();
        assert_eq!(
            p.list(items.clone()),
            json!({"itemCount": 5, "pageCount": 3, "items": [4]})
        );
        let p = Page::from_query(&q(&[("itemsPerPage", "2"), ("page", "7")])).unwrap();
        assert_eq!(p.list(items.clone())["items"], json!([]));
        let p = Page::from_query(&q(&[])).unwrap();
        assert_eq!(p.items_per_page, 100);
        assert_eq!(p.list(items)["pageCount"], json!(1));
        assert_eq!(p.list(Vec::new())["pageCount"], json!(0));
    }

    // MediaMTX: TestPaginate
    #[test]
    fn pages_as_mediamtx_cuts_them() {
        let list = |n: i64, per: &str, page: &str| {
            let items: Vec<Value> = (0..n).map(|i| json!(i)).collect();
            let p = Page::from_query(&q(&[("itemsPerPage", per), ("page", page)])).unwrap();
            let out = p.list(items);
            (out["pageCount"].clone(), out["items"].clone())
        };
        assert_eq!(list(5, "1", "1"), (json!(5), json!([1])));
        assert_eq!(list(5, "3", "2"), (json!(2), json!([])));
        assert_eq!(list(6, "4", "1"), (json!(2), json!([4, 5])));
        assert_eq!(list(0, "1", "0"), (json!(0), json!([])));
    }

    #[test]
    fn bad_parameters_are_refused() {
        let text = |pairs: &[(&str, &str)]| Page::from_query(&q(pairs)).unwrap_err().to_string();
        assert_eq!(text(&[("itemsPerPage", "0")]), "invalid items per page");
        assert_eq!(
            text(&[("itemsPerPage", "x")]),
            "strconv.ParseUint: parsing \"x\": invalid syntax"
        );
        assert_eq!(
            text(&[("page", "-1")]),
            "strconv.ParseUint: parsing \"-1\": invalid syntax"
        );
        assert_eq!(
            text(&[("page", "2147483648")]),
            "strconv.ParseUint: parsing \"2147483648\": value out of range"
        );
        assert_eq!(Page::from_query(&q(&[("page", "0")])).unwrap().page, 0);
    }
}
