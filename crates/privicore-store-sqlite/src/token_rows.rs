//! Token rows as the writer last wrote them. Store and fetch flows read a token's row
//! right after a commit wrote it, and after every commit a read connection starts with an
//! empty page cache, so such a read went back to the WAL for every page (a tenth of the
//! engine's CPU). The writer thread alone fills this cache, from the rows its statements
//! return: it forgets a token before the transaction that writes it and keeps the row
//! written once that transaction committed, so a read sees either the database or the
//! newest committed row, never an older one. Read connections never fill it.

use privicore_domain::CommandId;
use privicore_domain::data_token::DataToken;
use std::collections::HashMap;
use std::sync::Mutex;

/// Rows held at most; the cache starts over when full (the flows it serves reread a row
/// within milliseconds of writing it).
const MAX_ROWS: usize = 32_768;

#[derive(Default)]
struct Rows {
    by_token: HashMap<String, DataToken>,
    by_reservation: HashMap<CommandId, String>,
}

#[derive(Default)]
pub struct TokenRows {
    rows: Mutex<Rows>,
}

impl TokenRows {
    fn lock(&self) -> std::sync::MutexGuard<'_, Rows> {
        self.rows.lock().expect("token row cache lock")
    }

    pub fn get(&self, token: &str) -> Option<DataToken> {
        self.lock().by_token.get(token).cloned()
    }

    pub fn by_reservation(&self, command: CommandId) -> Option<DataToken> {
        let rows = self.lock();
        let token = rows.by_reservation.get(&command)?;
        rows.by_token
            .get(token)
            .filter(|row| row.reserve_command_id == command)
            .cloned()
    }

    /// Before a transaction that writes these tokens' rows: reads go to the database.
    pub fn forget<'a>(&self, tokens: impl IntoIterator<Item = &'a str>) {
        let mut rows = self.lock();
        for token in tokens {
            if let Some(row) = rows.by_token.remove(token) {
                rows.by_reservation.remove(&row.reserve_command_id);
            }
        }
    }

    /// After that transaction committed: the rows as it wrote them, in write order.
    pub fn keep(&self, written: Vec<DataToken>) {
        let mut rows = self.lock();
        if rows.by_token.len() + written.len() > MAX_ROWS {
            *rows = Rows::default();
        }
        for row in written {
            rows.by_reservation
                .insert(row.reserve_command_id, row.token.clone());
            rows.by_token.insert(row.token.clone(), row);
        }
    }
}
