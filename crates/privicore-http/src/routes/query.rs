//! Query strings: pagination and `filters[…]` (docs/api/README.md §9).

use crate::body::{Fields, parse_form};
use axum::http::Uri;
use privicore_domain::data_token::Page;
use privicore_domain::{Error, Reason};
use serde_json::{Map, Value};

pub fn query(uri: &Uri) -> Result<Fields, Error> {
    parse_form(uri.query().unwrap_or_default().as_bytes())
}

pub fn page(q: &Fields) -> Result<Page, Error> {
    let page = q.opt_int("page")?.unwrap_or(1);
    let per_page = q.opt_int("perPage")?.unwrap_or(25);
    if page < 1 {
        return Err(Error::out_of_range("page", "1.."));
    }
    if !(1..=100).contains(&per_page) {
        return Err(Error::out_of_range("perPage", "1..100"));
    }
    // The offset must fit the stores' signed 64-bit arithmetic; past that no page exists.
    if page - 1 > i64::MAX / per_page {
        let last = (i64::MAX / per_page) as u64 + 1;
        return Err(Error::out_of_range("page", format!("1..{last}")));
    }
    Ok(Page {
        page: page as u64,
        per_page: per_page as u64,
    })
}

/// The `filters` object; names outside `allowed` answer `validation.unknown_filter`.
pub fn filters(q: &Fields, allowed: &[&str]) -> Result<Map<String, Value>, Error> {
    let map = match q.0.get("filters") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(Error::new(Reason::ValidationUnknownFilter).with_field("filters")),
    };
    for (name, value) in &map {
        if !allowed.contains(&name.as_str()) {
            return Err(Error::new(Reason::ValidationUnknownFilter)
                .with_field(format!("filters[{name}]"))
                .with_message(format!("Unknown filter {name}.")));
        }
        if !value.is_string() {
            return Err(Error::invalid_type(&format!("filters[{name}]"), "a string"));
        }
    }
    Ok(map)
}

pub fn filter<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    map.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// `filters[online]`, the only filter of the device lists that take one: `true`/`1` or
/// `false`/`0`, any case.
pub fn online_filter(q: &Fields) -> Result<Option<bool>, Error> {
    let f = filters(q, &["online"])?;
    match filter(&f, "online").map(str::to_ascii_lowercase).as_deref() {
        None => Ok(None),
        Some("true" | "1") => Ok(Some(true)),
        Some("false" | "0") => Ok(Some(false)),
        Some(_) => Err(Error::invalid_type("filters[online]", "a boolean")),
    }
}

pub fn items_page(items: Vec<Value>, page: Page, total: u64) -> Value {
    serde_json::json!({ "items": items, "meta": { "page": page.page, "perPage": page.per_page, "total": total } })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page_of(query: &str) -> Result<Page, Error> {
        page(&parse_form(query.as_bytes()).unwrap())
    }

    #[test]
    fn a_page_whose_offset_overflows_is_out_of_range() {
        let err = page_of("page=9223372036854775807").unwrap_err();
        assert_eq!(
            (err.reason, err.field.as_deref()),
            (Reason::ValidationOutOfRange, Some("page"))
        );
        let last = i64::MAX / 100 + 1;
        let p = page_of(&format!("page={last}&perPage=100")).unwrap();
        assert_eq!(p.offset(), (last as u64 - 1) * 100);
        assert!(p.offset() <= i64::MAX as u64);
        assert!(page_of(&format!("page={}&perPage=100", last + 1)).is_err());
        let p = page_of(&format!("page={}&perPage=1", i64::MAX)).unwrap();
        assert_eq!(p.offset(), i64::MAX as u64 - 1, "every page of one fits");
    }
}
