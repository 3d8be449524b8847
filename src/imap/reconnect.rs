//! The one reconnect loop both edges use: obtain a live connection, run an operation on it, and
//! on failure let the caller decide whether to obtain a connection again and repeat.
//!
//! The source obtains its single session (reconnecting and re-selecting the folder, checking that
//! UIDVALIDITY did not change); the sink leases one from its pool. Only what "obtain" and "decide"
//! mean differs, so both are parameters.
//!
//! A macro rather than a function taking an async closure: futures of async closures over
//! `&mut Conn` are not provably `Send`, and the engine spawns these.

/// `with_reconnect!(acquire, |c| body, |err, attempt| give_up)`:
/// - `acquire` is a future resolving to `Result<G, ImapError>` where `G` dereferences mutably to a
///   [`Conn`](crate::imap::conn::Conn) (a `&mut Conn`, or a pool lease);
/// - `body` is a future using `c: &mut Conn` and must be safe to run again (idempotent);
/// - `give_up` is an expression over the error and the 1-based attempt number that yields
///   `Some(error)` to stop with that error, or `None` to obtain a connection and try again.
macro_rules! with_reconnect {
    ($acquire:expr, |$c:ident| $body:expr, |$err:ident, $attempt:ident| $give_up:expr) => {{
        let mut $attempt: u32 = 0;
        loop {
            $attempt += 1;
            let result = match $acquire.await {
                // `mut` is needed for a lease and redundant for a `&mut Conn`.
                #[allow(unused_mut)]
                Ok(mut guard) => {
                    let $c: &mut $crate::imap::conn::Conn = &mut *guard;
                    $body.await
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(v) => break Ok(v),
                Err($err) => {
                    if let Some(stop) = $give_up {
                        break Err(stop);
                    }
                }
            }
        }
    }};
}
pub(crate) use with_reconnect;
