//! Message ids seen lately, for at-least-once delivery.

use std::collections::HashSet;

/// Two generations of ids: once the newer one holds `generation` ids it becomes the older
/// one, and the new newer one reuses the allocation of the one dropped. At least the last
/// `generation` ids are remembered; the sets stop growing (and rehashing, a pause the
/// confirmations behind it would wait out) after the first fill; and an idle device holds
/// next to nothing, where a set sized for the bound up front held ~900 KiB resident.
pub(super) struct Seen {
    generation: usize,
    newer: HashSet<String>,
    older: HashSet<String>,
}

impl Seen {
    pub(super) fn new(generation: usize) -> Self {
        Self {
            generation,
            newer: HashSet::new(),
            older: HashSet::new(),
        }
    }

    /// True the first time `id` is offered.
    pub(super) fn first_time(&mut self, id: &str) -> bool {
        if self.newer.contains(id) || self.older.contains(id) {
            return false;
        }
        if self.newer.len() >= self.generation {
            std::mem::swap(&mut self.newer, &mut self.older);
            self.newer.clear();
        }
        self.newer.insert(id.to_owned());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_least_one_generation_of_ids_is_remembered() {
        let mut seen = Seen::new(3);
        let ids: Vec<String> = (0..10).map(|i| format!("m-{i}")).collect();
        for id in &ids[..7] {
            assert!(seen.first_time(id));
        }
        // The last three (and those of the older generation) are still known.
        for id in &ids[4..7] {
            assert!(!seen.first_time(id), "{id} was seen");
        }
        assert!(seen.first_time(&ids[0]), "old ids are forgotten");
        assert!(seen.newer.capacity() <= 16 && seen.older.capacity() <= 16);
    }
}
