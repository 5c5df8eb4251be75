//! The fleet-wide "at most one" of a djob or cron: a PostgreSQL session
//! lease held inside each djob and cron container, beside its daemon, by
//! `/usr/lib/webdock/lease` (images/rootfs), when `[lease]` is configured.
//! This module is the contract between that holder and the controller
//! (status, failover); it holds no connection of its own.
//!
//! What a container gets (`roles::Specs`): `WEBDOCK_LEASE_DSN` (the libpq
//! URL from the env file variable `[lease] postgres` names),
//! `WEBDOCK_LEASE_NAME` (`<project>/<djob>` or `<project>/cron`, see
//! [`name`]), `WEBDOCK_LEASE_WINDOW` (whole seconds) and `WEBDOCK_HOST`.
//!
//! The lease is the session advisory lock
//! `pg_try_advisory_lock(LEASE_CLASS, hashtext(name))` (two-int4 form: in
//! `pg_locks` it is `locktype = 'advisory'`, `classid = LEASE_CLASS`,
//! `objid = hashtext(name)::oid`, `objsubid = 2`), taken on a direct
//! connection (a transaction-mode pooler breaks session locks). Beside it,
//! the table [`TABLE_SQL`], created by the first holder ([`SETUP_SQL`], under
//! a transaction advisory lock so concurrent holders do not race). Every
//! acquisition bumps the row's `epoch` ([`BUMP_SQL`]); the daemon gets it as
//! `WEBDOCK_LEASE_EPOCH` and fences its writes with it.
//!
//! The holder's rules, with `window` = `[lease] window`:
//! - its session sets `idle_session_timeout = window` (and server-side TCP
//!   keepalives and `tcp_user_timeout` of about a window), so the server
//!   frees the lock of a silent holder (frozen, partitioned, dead) only a
//!   full window after the last query it answered;
//! - the daemon starts only once the lock is held and the epoch bumped;
//! - it confirms the lock every window/6 ([`CONFIRM_SQL`]); a monitor
//!   SIGKILLs the daemon's process group when no confirmation sent after
//!   the last good one's send time came back within window/2; any
//!   connection error is a loss too. So the old daemon is dead before the
//!   server frees the lock. On loss it exits 75 (s6 runs it again, and it
//!   waits for the lease again);
//! - SIGTERM: passed on to the daemon's group; once it has exited, the
//!   session closes (freeing the lock) and the holder exits with its status.
//!
//! What only the fence guarantees: a daemon frozen (`docker pause`) past the
//! window, then thawed, runs for a moment before its holder notices; its
//! writes must check `epoch` (`SELECT epoch FROM webdock_lease WHERE name =
//! $1 FOR SHARE` in the same transaction) to be refused.

use std::time::Duration;

/// The first key of the two-int4 advisory lock (fixed; "WDFK" read as a
/// big-endian i32).
pub const LEASE_CLASS: i32 = 1464092235;

/// The holder's table, as it creates it.
pub const TABLE_SQL: &str = "CREATE TABLE IF NOT EXISTS webdock_lease (name text PRIMARY KEY, epoch bigint NOT NULL DEFAULT 0, holder text NOT NULL DEFAULT '', acquired_at timestamptz)";

/// Run in one transaction by every holder before its first try: the
/// transaction lock serialises concurrent `CREATE TABLE IF NOT EXISTS`
/// (which can otherwise fail with a unique violation in pg_type).
pub const SETUP_SQL: &str = "SELECT pg_advisory_xact_lock(1464092235)";

/// `$1` = name; true when this session now holds the lease.
pub const TRY_SQL: &str = "SELECT pg_try_advisory_lock(1464092235, hashtext($1))";

/// `$1` = name, `$2` = holder; the new epoch. Run in one transaction right
/// after the lock is held.
pub const BUMP_SQL: &str = "INSERT INTO webdock_lease AS l (name, epoch, holder, acquired_at) VALUES ($1, 1, $2, now()) ON CONFLICT (name) DO UPDATE SET epoch = l.epoch + 1, holder = EXCLUDED.holder, acquired_at = EXCLUDED.acquired_at RETURNING epoch";

/// `$1` = name; 1 while this session still holds the lease, 0 once lost.
pub const CONFIRM_SQL: &str = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 1464092235 AND objid = hashtext($1)::oid AND objsubid = 2 AND granted AND pid = pg_backend_pid()";

/// For the controller: `$1` = name; one row (epoch bigint, holder text,
/// acquired_at timestamptz, held bool, holder_addr text). epoch, holder and
/// acquired_at are NULL when the lease was never taken; holder_addr is the
/// client address of the session holding it now (NULL when none holds it,
/// or over a unix socket). Fails with 42P01 (undefined_table) before the
/// first holder ever ran.
pub const HOLDER_SQL: &str = "SELECT l.epoch, l.holder, l.acquired_at, k.pid IS NOT NULL AS held, host(a.client_addr) AS holder_addr FROM (SELECT $1::text AS name) n LEFT JOIN webdock_lease l ON l.name = n.name LEFT JOIN pg_locks k ON k.locktype = 'advisory' AND k.classid = 1464092235 AND k.objid = hashtext(n.name)::oid AND k.objsubid = 2 AND k.granted AND k.database = (SELECT oid FROM pg_database WHERE datname = current_database()) LEFT JOIN pg_stat_activity a ON a.pid = k.pid";

/// The exit code of a holder that lost its lease (EX_TEMPFAIL): djob-finish
/// does not stop the container, s6 runs the holder again.
pub const LOST_EXIT: i32 = 75;

/// The lease's name for a djob (`Some(name)`) or cron (`None`).
pub fn name(project: &str, djob: Option<&str>) -> String {
    match djob {
        Some(d) => format!("{project}/{d}"),
        None => format!("{project}/cron"),
    }
}

/// Whole seconds, as the container gets it (`[lease] window` is validated
/// to be whole seconds).
pub fn window_secs(window: Duration) -> u64 {
    window.as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOLDER: &str = include_str!("../images/rootfs/usr/lib/webdock/lease");

    #[test]
    fn the_holder_speaks_this_contract() {
        // the holder uses psycopg2's %s where the controller uses $1
        for sql in [TABLE_SQL, SETUP_SQL, TRY_SQL, BUMP_SQL, CONFIRM_SQL] {
            let py = sql.replace("$1", "%s").replace("$2", "%s");
            assert!(HOLDER.contains(&py), "the holder lacks {py}");
        }
        assert!(HOLDER.contains(&format!("LOST = {LOST_EXIT}")));
        assert_eq!(LEASE_CLASS, i32::from_be_bytes(*b"WDFK"));
    }

    #[test]
    fn names() {
        assert_eq!(name("demo", Some("billing")), "demo/billing");
        assert_eq!(name("demo", None), "demo/cron");
    }
}
