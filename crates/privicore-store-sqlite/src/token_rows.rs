//! Token rows as the writer last wrote them. Store and fetch flows read a token's row
//! right after a commit wrote it, and after every commit a read connection starts with an
//! empty page cache, so such a read went back to the WAL for every page (a tenth of the
//! engine's CPU). The writer thread alone fills this cache, from the rows its statements
//! return: a request forgets its tokens before its transaction and keeps the rows it wrote
//! once that transaction committed, unless a later request (in the same group commit) has
//! written the token since. A read so sees the database or the newest committed row, never
//! an older one. Read connections never fill it.

use lru::LruCache;
use privicore_domain::CommandId;
use privicore_domain::data_token::DataToken;
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Mutex;

/// Rows held at most; beyond it the oldest go (the flows the cache serves reread a row
/// within milliseconds of writing it). The maps are sized for this bound when the cache
/// is made and never grow: a growing map rehashes everything at each doubling, and a
/// cache that started over dropped everything at once, both while holding the lock every
/// commit and every read waits for.
const MAX_ROWS: usize = 32_768;

/// Which write a request is: rows are kept only by the last request that forgot them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteTag(u64);

struct Rows {
    by_token: LruCache<String, DataToken>,
    by_reservation: LruCache<CommandId, String>,
    /// Tokens forgotten by a request whose rows are not kept yet, and that request's tag.
    writing: HashMap<String, WriteTag>,
    next_tag: u64,
}

pub struct TokenRows {
    rows: Mutex<Rows>,
}

impl Default for TokenRows {
    fn default() -> Self {
        Self::with_capacity(MAX_ROWS)
    }
}

impl TokenRows {
    fn with_capacity(rows: usize) -> Self {
        let bound = NonZeroUsize::new(rows).unwrap_or(NonZeroUsize::MIN);
        Self {
            rows: Mutex::new(Rows {
                by_token: LruCache::new(bound),
                by_reservation: LruCache::new(bound),
                writing: HashMap::new(),
                next_tag: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Rows> {
        self.rows.lock().expect("token row cache lock")
    }

    pub fn get(&self, token: &str) -> Option<DataToken> {
        self.lock().by_token.peek(token).cloned()
    }

    pub fn by_reservation(&self, command: CommandId) -> Option<DataToken> {
        let rows = self.lock();
        let token = rows.by_reservation.peek(&command)?;
        rows.by_token
            .peek(token)
            .filter(|row| row.reserve_command_id == command)
            .cloned()
    }

    /// Before a transaction that writes these tokens' rows: reads go to the database.
    pub fn forget<'a>(&self, tokens: impl IntoIterator<Item = &'a str>) -> WriteTag {
        let mut rows = self.lock();
        rows.next_tag += 1;
        let tag = WriteTag(rows.next_tag);
        // Tokens of requests that failed stay here until written again; forgetting them
        // all only means their next rows are not kept, so the bound is cheap to keep.
        if rows.writing.len() >= MAX_ROWS {
            rows.writing.clear();
        }
        for token in tokens {
            if let Some(row) = rows.by_token.pop(token) {
                rows.by_reservation.pop(&row.reserve_command_id);
            }
            rows.writing.insert(token.to_owned(), tag);
        }
        tag
    }

    /// After that transaction committed: the rows it wrote, in write order.
    pub fn keep(&self, tag: WriteTag, written: Vec<DataToken>) {
        let mut rows = self.lock();
        // A request may write one row several times: the last write is the one kept, and
        // the token stops being written by it only after all of them. Tokens a request
        // forgot but wrote nothing to (or whose request failed) stay uncached until written
        // again.
        let mut kept = Vec::with_capacity(written.len());
        for row in written {
            if rows.writing.get(&row.token) != Some(&tag) {
                continue;
            }
            rows.by_reservation
                .put(row.reserve_command_id, row.token.clone());
            kept.push(row.token.clone());
            rows.by_token.put(row.token.clone(), row);
        }
        for token in kept {
            rows.writing.remove(&token);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use privicore_domain::data_token::TokenStatus;

    fn row(status: TokenStatus) -> DataToken {
        use privicore_domain::ports::conformance::{profile, token_of};
        DataToken {
            token: "dtk-de1e9b84-b367-4bfa-9f8c-ceb00d813be5".into(),
            status,
            ..token_of(&profile("cache"), "/")
        }
    }

    #[test]
    fn a_row_superseded_in_the_same_commit_is_not_kept() {
        let cache = TokenRows::default();
        let (first, second) = (row(TokenStatus::Reserved), row(TokenStatus::Exchanging));
        let token = first.token.clone();
        let first_tag = cache.forget([token.as_str()]);
        let second_tag = cache.forget([token.as_str()]);
        // Both committed together; answers come in request order.
        cache.keep(first_tag, vec![first]);
        assert_eq!(cache.get(&token), None, "the older row never shows");
        cache.keep(second_tag, vec![second.clone()]);
        assert_eq!(cache.get(&token), Some(second));
    }

    #[test]
    fn a_request_that_writes_a_row_twice_keeps_the_last_write() {
        let cache = TokenRows::default();
        let (first, last) = (row(TokenStatus::Exchanging), row(TokenStatus::Active));
        let token = first.token.clone();
        let tag = cache.forget([token.as_str(), token.as_str()]);
        cache.keep(tag, vec![first, last.clone()]);
        assert_eq!(cache.get(&token), Some(last));
    }

    #[test]
    fn a_request_that_failed_leaves_the_token_to_the_database() {
        let cache = TokenRows::default();
        let first = row(TokenStatus::Reserved);
        let token = first.token.clone();
        let first_tag = cache.forget([token.as_str()]);
        // A later request forgot the token too, then failed: it keeps nothing.
        let _failed = cache.forget([token.as_str()]);
        cache.keep(first_tag, vec![first]);
        assert_eq!(cache.get(&token), None);
        let next = row(TokenStatus::Active);
        let tag = cache.forget([token.as_str()]);
        cache.keep(tag, vec![next.clone()]);
        assert_eq!(cache.get(&token), Some(next.clone()));
        assert_eq!(cache.by_reservation(next.reserve_command_id), Some(next));
    }

    #[test]
    fn the_oldest_rows_go_first_once_the_bound_is_reached() {
        let cache = TokenRows::with_capacity(2);
        let rows: Vec<DataToken> = (0..3)
            .map(|i| DataToken {
                token: format!("dtk-{i}"),
                reserve_command_id: CommandId::new(),
                ..row(TokenStatus::Active)
            })
            .collect();
        for r in &rows {
            let tag = cache.forget([r.token.as_str()]);
            cache.keep(tag, vec![r.clone()]);
        }
        assert_eq!(cache.get("dtk-0"), None);
        assert_eq!(cache.by_reservation(rows[0].reserve_command_id), None);
        assert_eq!(cache.get("dtk-1"), Some(rows[1].clone()));
        assert_eq!(
            cache.by_reservation(rows[2].reserve_command_id),
            Some(rows[2].clone())
        );
    }
}
