//! The controller's view of the lease store (PostgreSQL): who holds a
//! worker's lease, at which fencing epoch. The holders themselves run
//! inside the containers (`images/rootfs/usr/lib/webdock/lease`, contract
//! in `crate::lease`); the controller only reads, to decide whether a
//! worker on a host that does not answer is already dead (nobody holds its
//! lease: its holder killed the daemon before the server freed the lock)
//! and for `status`.

use std::time::Duration;

use anyhow::{anyhow, Context};
use serde::Serialize;

use crate::config::Config;
use crate::lease::HOLDER_SQL;
use crate::out::Out;
use crate::roles::Role;

const WITHIN: Duration = Duration::from_secs(10);

/// One worker's lease as the store sees it now.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LeaseView {
    pub name: String,
    pub held: bool,
    /// The fencing epoch of the last acquisition (None: never taken).
    pub epoch: Option<i64>,
    /// `NAME@HOST ...` of the last holder.
    pub holder: Option<String>,
    pub since: Option<String>,
    /// The client address of the session holding it now.
    pub addr: Option<String>,
}

/// The lease name of a worker.
pub fn lease_name(cfg: &Config, role: &Role) -> Option<String> {
    match role {
        Role::Cron => Some(crate::lease::name(&cfg.project, None)),
        Role::Djob(n) => Some(crate::lease::name(&cfg.project, Some(n))),
        _ => None,
    }
}

/// Reads the leases of `roles` over one connection. None without `[lease]`.
pub async fn views(cfg: &Config, roles: &[Role]) -> anyhow::Result<Option<Vec<LeaseView>>> {
    let Some(dsn) = cfg.lease_dsn()? else {
        return Ok(None);
    };
    let client = connect(&dsn).await?;
    let mut out = Vec::new();
    for role in roles {
        let Some(name) = lease_name(cfg, role) else {
            continue;
        };
        out.push(read(&client, &name).await?);
    }
    Ok(Some(out))
}

async fn connect(dsn: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, conn) =
        tokio::time::timeout(WITHIN, tokio_postgres::connect(dsn, tokio_postgres::NoTls))
            .await
            .map_err(|_| {
                anyhow!(
                    "the lease store did not answer within {} s",
                    WITHIN.as_secs()
                )
            })?
            .context("cannot reach the lease store ([lease] postgres)")?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

async fn read(client: &tokio_postgres::Client, name: &str) -> anyhow::Result<LeaseView> {
    let sql =
        format!("SELECT epoch, holder, acquired_at::text, held, holder_addr FROM ({HOLDER_SQL}) q");
    match tokio::time::timeout(WITHIN, client.query_one(&sql, &[&name])).await {
        Err(_) => Err(anyhow!(
            "the lease store did not answer within {} s",
            WITHIN.as_secs()
        )),
        // Before the first holder ever ran, there is no table: nobody holds it.
        Ok(Err(e)) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {
            Ok(LeaseView {
                name: name.into(),
                held: false,
                epoch: None,
                holder: None,
                since: None,
                addr: None,
            })
        }
        Ok(Err(e)) => Err(anyhow!(e).context(format!("reading lease {name}"))),
        Ok(Ok(row)) => Ok(LeaseView {
            name: name.into(),
            epoch: row.get(0),
            holder: row.get(1),
            since: row.get(2),
            held: row.get(3),
            addr: row.get(4),
        }),
    }
}

/// Whether nobody holds `role`'s lease: a daemon on a host that does not
/// answer is then already dead. Without `[lease]`: never (webdock cannot
/// know). A store that does not answer is an error: not knowing is not
/// free.
pub async fn free_for(cfg: &Config, role: &Role, out: Out) -> anyhow::Result<bool> {
    let Some(v) = views(cfg, std::slice::from_ref(role)).await? else {
        return Ok(false);
    };
    let Some(v) = v.into_iter().next() else {
        return Ok(false);
    };
    if v.held {
        out.progress(&format!(
            "lease {} is held by {} (epoch {}) from {}",
            v.name,
            v.holder.as_deref().unwrap_or("?"),
            v.epoch.unwrap_or(0),
            v.addr.as_deref().unwrap_or("?")
        ));
    }
    Ok(!v.held)
}
