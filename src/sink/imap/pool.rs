//! A small pool of authenticated connections behind `&self`: a semaphore bounds how many are in
//! use, idle ones wait in a vector. A connection that failed is never returned to the pool.

use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::imap::conn::Conn;
use crate::imap::{ImapAuth, ImapEndpoint, ImapError};

#[derive(Debug)]
pub(crate) struct Pool {
    endpoint: ImapEndpoint,
    auth: ImapAuth,
    idle: Mutex<Vec<Conn>>,
    permits: Arc<Semaphore>,
}

/// A checked-out connection; goes back to the pool on drop if still usable.
pub(crate) struct Lease<'a> {
    pool: &'a Pool,
    conn: Option<Conn>,
    _permit: OwnedSemaphorePermit,
}

impl Pool {
    pub(crate) fn new(endpoint: ImapEndpoint, auth: ImapAuth, size: usize, first: Conn) -> Pool {
        Pool {
            endpoint,
            auth,
            idle: Mutex::new(vec![first]),
            permits: Arc::new(Semaphore::new(size.max(1))),
        }
    }

    pub(crate) fn endpoint(&self) -> &ImapEndpoint {
        &self.endpoint
    }

    pub(crate) fn user(&self) -> &str {
        self.auth.user()
    }

    /// A usable connection: an idle one, or a new login.
    pub(crate) async fn get(&self) -> Result<Lease<'_>, ImapError> {
        let permit = self.permits.clone().acquire_owned().await.map_err(|_| {
            ImapError::connection_lost(Box::default(), "the connection pool is closed")
        })?;
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match idle {
            Some(c) if c.is_usable() => c,
            _ => Conn::connect(&self.endpoint, &self.auth).await?,
        };
        Ok(Lease {
            pool: self,
            conn: Some(conn),
            _permit: permit,
        })
    }
}

impl Lease<'_> {
    pub(crate) fn conn(&mut self) -> &mut Conn {
        self
    }
}

impl std::ops::Deref for Lease<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        // Invariant: `conn` is only taken in `drop`.
        self.conn
            .as_ref()
            .expect("lease holds a connection until dropped")
    }
}

impl std::ops::DerefMut for Lease<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn
            .as_mut()
            .expect("lease holds a connection until dropped")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && conn.is_usable()
        {
            self.pool
                .idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(conn);
        }
    }
}
