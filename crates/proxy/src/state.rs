//! The proxy's routing state: the current table, its listeners and its persistence, changed
//! only by `apply`, one at a time.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::sync::Mutex;

use crate::activity::Activity;
use crate::listeners::{Listeners, PortError};
use crate::store::{Store, StoreError};
use crate::table::{Table, TableError};
use crate::workers::Workers;

/// Why an `apply` changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Table(#[from] TableError),
    #[error(transparent)]
    Port(#[from] PortError),
    #[error("table not saved, nothing changed: {0}")]
    Store(#[from] StoreError),
}

struct Inner {
    listeners: Listeners,
    table: Arc<Table>,
}

pub(crate) struct State {
    inner: Mutex<Inner>,
    activity: Arc<Activity>,
    store: Store,
}

impl State {
    pub(crate) fn new(bind: IpAddr, store: Store, workers: Arc<Workers>) -> Self {
        let activity = Arc::new(Activity::default());
        Self {
            inner: Mutex::new(Inner {
                listeners: Listeners::new(bind, Arc::clone(&activity), workers),
                table: Arc::new(Table::default()),
            }),
            activity,
            store,
        }
    }

    /// Serves what can be served of a saved table (see `Listeners::restore`); the file is left
    /// as it is. Returns the served part.
    pub(crate) async fn restore(&self, table: &Table) -> Arc<Table> {
        let mut inner = self.inner.lock().await;
        let served = Arc::new(inner.listeners.restore(table).await);
        inner.table = Arc::clone(&served);
        served
    }

    /// Replaces the whole table, or changes nothing: checks it, builds every port's config and
    /// binds the new ports, saves it, and only then switches.
    pub(crate) async fn apply(&self, table: Table) -> Result<(), ApplyError> {
        table.validate()?;
        let mut inner = self.inner.lock().await;
        let prepared = inner.listeners.prepare(&table)?;
        self.store.save_async(&table).await?;
        inner.listeners.commit(prepared).await;
        inner.table = Arc::new(table);
        Ok(())
    }

    pub(crate) async fn table(&self) -> Arc<Table> {
        Arc::clone(&self.inner.lock().await.table)
    }

    pub(crate) fn active(&self, backends: &[SocketAddr]) -> BTreeMap<SocketAddr, u64> {
        self.activity.active(backends)
    }
}
