//! The spool files of uploads: one file per upload, rows only with the version row,
//! removal with the rows, recovery at open.

use super::SqliteStore;
use privicore_domain::Timestamp;
use privicore_domain::data_token::{DataToken, TokenVersion};
use privicore_domain::effect::{DataEffect, Effect};
use privicore_domain::ports::MetadataStore;
use privicore_domain::ports::conformance::{stored_profile, token_of};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

struct Fixture {
    dir: tempfile::TempDir,
    store: SqliteStore,
    token: DataToken,
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("meta.db"))
            .await
            .unwrap();
        let p = stored_profile(&store, "spooler").await;
        let token = token_of(&p, "/upload");
        store
            .apply(&[DataEffect::CreateDataToken(token.clone()).into()], None)
            .await
            .unwrap();
        Self { dir, store, token }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("meta.db")
    }

    fn spool_dir(&self) -> PathBuf {
        self.dir.path().join("meta.db.spool")
    }

    async fn chunk(&self, index: u32, sealed: Vec<u8>) {
        let chunk = DataEffect::PutSpoolChunk {
            token: self.token.token.clone(),
            version: 1,
            index,
            sealed,
        };
        self.store.apply(&[chunk.into()], None).await.unwrap();
    }

    /// The upload's version row, as the upload's acceptance writes it.
    async fn put_version(&self, chunk_count: u32) {
        let version = TokenVersion {
            token: self.token.token.clone(),
            version: 1,
            header: vec![1],
            digest: "ab".into(),
            total_size: 1,
            chunk_count,
            committed: false,
        };
        let effects: Vec<Effect> = vec![DataEffect::PutTokenVersion(version).into()];
        self.store.apply(&effects, None).await.unwrap();
    }

    async fn apply(&self, effect: DataEffect) {
        self.store.apply(&[effect.into()], None).await.unwrap();
    }

    async fn reopen(self) -> Self {
        let db = self.db();
        self.store.close().await;
        Self {
            store: SqliteStore::open(&db).await.unwrap(),
            ..self
        }
    }

    async fn spool(&self) -> Option<Vec<Vec<u8>>> {
        self.store.spool(&self.token.token, 1).await.unwrap()
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    names
}

fn rows(db: &Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        "SELECT count(*) FROM spool WHERE file IS NOT NULL",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

/// Removal runs beside the writer once the drop is committed.
fn await_no_files(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !files(dir).is_empty() {
        assert!(
            Instant::now() < deadline,
            "spool files left: {:?}",
            files(dir)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[tokio::test]
async fn an_upload_goes_to_one_file_and_its_rows_come_with_the_version_row() {
    let f = Fixture::new().await;
    f.chunk(0, vec![1; 8]).await;
    f.chunk(1, vec![2; 8]).await;
    f.chunk(2, vec![3; 5]).await;
    let spooled = files(&f.spool_dir());
    assert_eq!(spooled.len(), 1);
    assert_eq!(std::fs::metadata(&spooled[0]).unwrap().len(), 21);
    assert_eq!(rows(&f.db()), 0, "no row per chunk while uploading");
    assert_eq!(
        f.store.spool_chunk(&f.token.token, 1, 1).await.unwrap(),
        Some(vec![2; 8])
    );
    assert_eq!(
        f.store.spool_chunk(&f.token.token, 1, 3).await.unwrap(),
        None
    );
    // A staged chunk sealed for good replaces it in place.
    f.chunk(0, vec![7; 8]).await;
    assert_eq!(std::fs::metadata(&spooled[0]).unwrap().len(), 21);

    f.put_version(3).await;
    assert_eq!(rows(&f.db()), 3);
    let whole = Some(vec![vec![7; 8], vec![2; 8], vec![3; 5]]);
    assert_eq!(f.spool().await, whole);
    let f = f.reopen().await;
    assert_eq!(f.spool().await, whole, "a written version's file survives");
    assert_eq!(
        f.store.spool_chunk(&f.token.token, 1, 2).await.unwrap(),
        Some(vec![3; 5])
    );

    f.apply(DataEffect::DropSpool {
        token: f.token.token.clone(),
        version: 1,
    })
    .await;
    assert_eq!(f.spool().await, None);
    await_no_files(&f.spool_dir());
}

#[tokio::test]
async fn a_dropped_upload_leaves_no_file() {
    let f = Fixture::new().await;
    f.chunk(0, vec![1; 8]).await;
    f.apply(DataEffect::DropSpool {
        token: f.token.token.clone(),
        version: 1,
    })
    .await;
    assert_eq!(f.spool().await, None);
    await_no_files(&f.spool_dir());
    // The same version uploaded again gets a file of its own.
    f.chunk(0, vec![4; 8]).await;
    assert_eq!(f.spool().await, Some(vec![vec![4; 8]]));
    assert_eq!(files(&f.spool_dir()).len(), 1);
}

#[tokio::test]
async fn files_of_uploads_cut_off_by_a_stop_are_removed_at_open() {
    let f = Fixture::new().await;
    f.chunk(0, vec![1; 8]).await;
    f.chunk(1, vec![2; 3]).await;
    assert_eq!(files(&f.spool_dir()).len(), 1);
    let f = f.reopen().await;
    assert!(files(&f.spool_dir()).is_empty(), "no row named the file");
    assert_eq!(f.spool().await, None);
    assert_eq!(
        f.store.spool_chunk(&f.token.token, 1, 0).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn rows_whose_file_is_gone_are_dropped_at_open() {
    let f = Fixture::new().await;
    f.chunk(0, vec![1; 8]).await;
    f.put_version(1).await;
    for file in files(&f.spool_dir()) {
        std::fs::remove_file(file).unwrap();
    }
    let f = f.reopen().await;
    assert_eq!(rows(&f.db()), 0);
    assert_eq!(f.spool().await, None);
}

#[tokio::test]
async fn purging_a_committed_version_removes_its_file() {
    let f = Fixture::new().await;
    f.chunk(0, vec![1; 8]).await;
    f.put_version(1).await;
    let later = Timestamp::now().plus_seconds(10);
    f.store.purge_spool(later).await.unwrap();
    assert_eq!(files(&f.spool_dir()).len(), 1, "not committed yet");
    f.apply(DataEffect::CommitVersion {
        token: f.token.token.clone(),
        version: 1,
        stored_size: 8,
        at: Timestamp::now(),
    })
    .await;
    assert!(f.store.purge_spool(later).await.unwrap() >= 1);
    assert_eq!(f.spool().await, None);
    await_no_files(&f.spool_dir());
}

#[tokio::test]
async fn inline_objects_stay_in_the_table() {
    let f = Fixture::new().await;
    f.apply(DataEffect::PutSpool {
        token: f.token.token.clone(),
        version: 1,
        chunks: vec![vec![6; 4]],
    })
    .await;
    assert!(files(&f.spool_dir()).is_empty());
    assert_eq!(f.spool().await, Some(vec![vec![6; 4]]));
}

#[tokio::test]
async fn a_settled_drop_removes_the_file_once_no_replica_is_pending() {
    use privicore_domain::data_token::{Replica, ReplicaState};
    use privicore_domain::device::DeviceId;
    let f = Fixture::new().await;
    let device = DeviceId::new();
    let replica = |state| {
        DataEffect::SetReplica(Replica {
            token: f.token.token.clone(),
            version: 1,
            device_id: device,
            state,
        })
    };
    let settled = || DataEffect::DropSettledSpool {
        token: f.token.token.clone(),
        version: 1,
    };
    f.chunk(0, vec![1; 8]).await;
    f.put_version(1).await;
    f.apply(replica(ReplicaState::Pending)).await;
    f.apply(settled()).await;
    assert_eq!(
        f.spool().await,
        Some(vec![vec![1; 8]]),
        "a replica is pending"
    );
    assert_eq!(files(&f.spool_dir()).len(), 1);
    f.apply(replica(ReplicaState::Confirmed)).await;
    f.apply(settled()).await;
    assert_eq!(f.spool().await, None);
    await_no_files(&f.spool_dir());
}
