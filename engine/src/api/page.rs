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
    /// Reads the parameters from the decoded query pairs; a bad value is a 400.
    pub fn from_query(pairs: &[(String, String)]) -> Result<Page, ApiError> {
        let get = |name: &str, default: usize, min: usize| -> Result<usize, ApiError> {
            match pairs.iter().find(|(k, _)| k == name) {
                None => Ok(default),
                Some((_, v)) if v.is_empty() => Ok(default),
                Some((_, v)) => v
                    .parse::<u32>()
                    .ok()
                    .filter(|&n| n < 1 << 31 && n as usize >= min)
                    .map(|n| n as usize)
                    .ok_or_else(|| ApiError::invalid(format!("invalid {name}: '{v}'"))),
            }
        };
        Ok(Page {
            items_per_page: get("itemsPerPage", 100, 1)?,
            page: get("page", 0, 0)?,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
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

    #[test]
    fn bad_parameters_are_refused() {
        for bad in [("itemsPerPage", "0"), ("itemsPerPage", "x"), ("page", "-1")] {
            let e = Page::from_query(&q(&[bad])).unwrap_err();
            assert_eq!(e.status(), 400);
            assert!(e.to_string().starts_with("invalid "), "{e}");
        }
    }
}
