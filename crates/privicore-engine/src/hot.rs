//! What the next step of a flow is about to read again, kept from the step before: the
//! sealed version an exchange just persisted (its command replicates it next), the storage
//! devices of a profile, and the headers of committed versions (which never change: an
//! update commits a new version). All are shortcuts only: the store stays the truth, and a
//! miss reads it.

use lru::LruCache;
use privicore_domain::ProfileId;
use privicore_domain::data_token::TokenVersion;
use privicore_domain::device::DeviceId;
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Sealed bytes held at most; beyond it versions are read back from the spool.
const FRESH_MAX_BYTES: usize = 64 << 20;
/// A kept version whose command never came for it (it failed early) goes after this.
const FRESH_TTL: Duration = Duration::from_secs(60);
/// A device list is reused this long unless a device command of the profile ends first.
const TARGETS_TTL: Duration = Duration::from_secs(1);

type Kept = (TokenVersion, Vec<Vec<u8>>, Instant);
/// The kept versions and their total size in bytes.
type Held = (HashMap<(String, u32), Kept>, usize);

#[derive(Default)]
pub(crate) struct Fresh {
    versions: Mutex<Held>,
}

fn bytes(chunks: &[Vec<u8>]) -> usize {
    chunks.iter().map(Vec::len).sum()
}

impl Fresh {
    /// Keeps a version persisted with its command, for that command's replication.
    pub fn keep(&self, version: TokenVersion, chunks: Vec<Vec<u8>>) {
        let size = bytes(&chunks);
        let mut guard = self.versions.lock().expect("fresh lock");
        let (map, held) = &mut *guard;
        if *held + size > FRESH_MAX_BYTES {
            map.retain(|_, (_, c, at)| {
                let keep = at.elapsed() < FRESH_TTL;
                if !keep {
                    *held -= bytes(c);
                }
                keep
            });
            if *held + size > FRESH_MAX_BYTES {
                return;
            }
        }
        *held += size;
        let key = (version.token.clone(), version.version);
        if let Some((_, old, _)) = map.insert(key, (version, chunks, Instant::now())) {
            *held -= bytes(&old);
        }
    }

    pub fn take(&self, token: &str, version: u32) -> Option<(TokenVersion, Vec<Vec<u8>>)> {
        let mut guard = self.versions.lock().expect("fresh lock");
        let (map, held) = &mut *guard;
        let (version, chunks, _) = map.remove(&(token.to_owned(), version))?;
        *held -= bytes(&chunks);
        Some((version, chunks))
    }
}

/// Committed versions kept at most, by the two maps below; beyond it the oldest go. The
/// maps are sized for it up front: growing by doubling, or starting over when full, made
/// the flows that wait on their locks stall.
const COMMITTED_MAX: NonZeroUsize = NonZeroUsize::new(65_536).expect("not zero");

/// Values per token version, at most `COMMITTED_MAX` of them.
struct ByVersion<V>(Mutex<LruCache<(String, u32), V>>);

impl<V> Default for ByVersion<V> {
    fn default() -> Self {
        Self(Mutex::new(LruCache::new(COMMITTED_MAX)))
    }
}

impl<V: Clone> ByVersion<V> {
    fn lock(&self) -> MutexGuard<'_, LruCache<(String, u32), V>> {
        self.0.lock().expect("version cache lock")
    }

    fn get(&self, token: &str, version: u32) -> Option<V> {
        self.lock().peek(&(token.to_owned(), version)).cloned()
    }

    fn put(&self, token: String, version: u32, value: V) {
        self.lock().put((token, version), value);
    }
}

#[derive(Default)]
pub(crate) struct Committed {
    versions: ByVersion<TokenVersion>,
}

impl Committed {
    pub fn get(&self, token: &str, version: u32) -> Option<TokenVersion> {
        self.versions.get(token, version)
    }

    /// Keeps a version read from the store, if it is committed.
    pub fn note(&self, version: &TokenVersion) {
        if version.committed {
            self.versions
                .put(version.token.clone(), version.version, version.clone());
        }
    }
}

#[derive(Default)]
pub(crate) struct Targets {
    profiles: Mutex<HashMap<ProfileId, (Vec<DeviceId>, Instant)>>,
}

impl Targets {
    pub fn get(&self, profile: ProfileId) -> Option<Vec<DeviceId>> {
        self.profiles
            .lock()
            .expect("targets lock")
            .get(&profile)
            .filter(|(_, at)| at.elapsed() < TARGETS_TTL)
            .map(|(devices, _)| devices.clone())
    }

    pub fn put(&self, profile: ProfileId, devices: Vec<DeviceId>) {
        let mut profiles = self.profiles.lock().expect("targets lock");
        profiles.retain(|_, (_, at)| at.elapsed() < TARGETS_TTL);
        profiles.insert(profile, (devices, Instant::now()));
    }

    pub fn forget(&self, profile: ProfileId) {
        self.profiles.lock().expect("targets lock").remove(&profile);
    }
}

/// Devices that confirmed a version when it was committed, as a first guess for its
/// retrieval. Only a hint: replicas may go missing or be added later, so retrieval falls
/// back to the store's replica rows when none of these delivers.
#[derive(Default)]
pub(crate) struct Holders {
    versions: ByVersion<Vec<DeviceId>>,
}

impl Holders {
    pub fn get(&self, token: &str, version: u32) -> Option<Vec<DeviceId>> {
        self.versions.get(token, version)
    }

    pub fn note(&self, token: &str, version: u32, devices: Vec<DeviceId>) {
        self.versions.put(token.to_owned(), version, devices);
    }

    /// Adds a device confirmed after the commit, if the version is kept.
    pub fn add(&self, token: &str, version: u32, device: DeviceId) {
        let mut versions = self.versions.lock();
        if let Some(devices) = versions.peek_mut(&(token.to_owned(), version))
            && !devices.contains(&device)
        {
            devices.push(device);
        }
    }

    pub fn forget(&self, token: &str, version: u32) {
        self.versions.lock().pop(&(token.to_owned(), version));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(token: &str, size: usize) -> (TokenVersion, Vec<Vec<u8>>) {
        (
            TokenVersion {
                token: token.into(),
                version: 1,
                header: vec![],
                digest: String::new(),
                total_size: size as u64,
                chunk_count: 1,
                committed: false,
            },
            vec![vec![0; size]],
        )
    }

    #[test]
    fn fresh_versions_are_taken_once_and_bounded() {
        let fresh = Fresh::default();
        let (v, c) = version("a", 10);
        fresh.keep(v, c);
        assert!(fresh.take("a", 1).is_some());
        assert!(fresh.take("a", 1).is_none());
        let (v, c) = version("big", FRESH_MAX_BYTES + 1);
        fresh.keep(v, c);
        assert!(
            fresh.take("big", 1).is_none(),
            "over the bound nothing is kept"
        );
    }

    #[test]
    fn only_committed_versions_are_kept() {
        let committed = Committed::default();
        let (mut v, _) = version("a", 1);
        committed.note(&v);
        assert!(committed.get("a", 1).is_none());
        v.committed = true;
        committed.note(&v);
        assert!(committed.get("a", 1).is_some_and(|kept| kept.committed));
    }

    #[test]
    fn holders_gain_late_devices_once_and_are_forgotten() {
        let holders = Holders::default();
        let (first, late) = (
            DeviceId(uuid::Uuid::new_v4()),
            DeviceId(uuid::Uuid::new_v4()),
        );
        holders.add("a", 1, late);
        assert!(holders.get("a", 1).is_none(), "nothing to add to");
        holders.note("a", 1, vec![first]);
        holders.add("a", 1, late);
        holders.add("a", 1, late);
        assert_eq!(holders.get("a", 1), Some(vec![first, late]));
        holders.forget("a", 1);
        assert!(holders.get("a", 1).is_none());
    }

    #[test]
    fn targets_are_forgotten_on_demand() {
        let targets = Targets::default();
        let profile = ProfileId(uuid::Uuid::new_v4());
        targets.put(profile, vec![DeviceId(uuid::Uuid::new_v4())]);
        assert_eq!(targets.get(profile).map(|d| d.len()), Some(1));
        targets.forget(profile);
        assert!(targets.get(profile).is_none());
    }
}
